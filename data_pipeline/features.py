"""Network inputs from decoded media: the log-magnitude spectrogram and the image augmentations.

Training images are resized straight to a resize_size square (aspect ratio not kept, so the
whole frame stays visible and boxes map linearly), then randomly cropped to image_size and
optionally flipped. Evaluation images are the whole frame resized to image_size, as the
published localisation protocols (LVS, EZ-VSL, SLAVC) score them: no box loses area to a crop.
`transform_box` maps a normalised box of the full frame through the same geometry.
"""

from __future__ import annotations

import dataclasses

import cv2
import librosa
import numpy as np


def log_spectrogram(wave: np.ndarray, *, n_fft: int, win_length: int, hop_length: int,
                    spec_frames: int, log_eps: float) -> np.ndarray:
  """log(|STFT| + log_eps) of a mono waveform as float32 [n_fft // 2 + 1, spec_frames, 1].

  Centred frames with reflect padding; the first spec_frames frames are kept (zero-padded with
  log(log_eps) if the waveform is short), so 1 s at 48 kHz, hop 240 gives 257 x 200.
  """
  wave = np.asarray(wave, np.float32)
  if wave.size < 2:  # reflect padding needs two samples
    wave = np.zeros(2, np.float32)
  stft = librosa.stft(wave, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                      window="hann", center=True, pad_mode="reflect")
  mag = np.abs(stft)[:, :spec_frames]
  if mag.shape[1] < spec_frames:
    mag = np.pad(mag, ((0, 0), (0, spec_frames - mag.shape[1])))
  # log_eps > 0 keeps silence finite. C order (librosa's STFT is Fortran-ordered): Grain moves
  # only C-ordered arrays through shared memory, others are pickled through a pipe.
  return np.ascontiguousarray(np.log(mag + log_eps), dtype=np.float32)[:, :, None]


def spectrogram_from_config(wave: np.ndarray, data_cfg) -> np.ndarray:
  """`log_spectrogram` with the sizes of a data config."""
  return log_spectrogram(wave, n_fft=data_cfg.n_fft, win_length=data_cfg.win_length,
                         hop_length=data_cfg.hop_length, spec_frames=data_cfg.spec_frames,
                         log_eps=data_cfg.log_eps)


def apply_gain(wave: np.ndarray, rng: np.random.Generator, gain: float) -> np.ndarray:
  """Scales the whole waveform by one factor drawn uniformly from [1 - gain, 1 + gain]."""
  if gain <= 0:
    return wave
  return (wave * rng.uniform(1.0 - gain, 1.0 + gain)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Geometry:
  """Where the network image came from: crop offset in the resized square and a flip."""
  resize_size: int
  image_size: int
  x0: int
  y0: int
  flip: bool


def resize(image: np.ndarray, resize_size: int) -> np.ndarray:
  """Resizes an HxWx3 uint8 image to resize_size x resize_size (area filter when shrinking)."""
  h, w = image.shape[:2]
  interp = cv2.INTER_AREA if min(h, w) > resize_size else cv2.INTER_LINEAR
  return cv2.resize(image, (resize_size, resize_size), interpolation=interp)


def sample_geometry(rng: np.random.Generator | None, resize_size: int, image_size: int,
                    flip: bool) -> Geometry:
  """Random crop offsets and flip (rng given), or for evaluation (rng None) the whole frame
  resized to image_size, without crop or flip."""
  if image_size > resize_size:
    raise ValueError(f"image_size {image_size} is larger than resize_size {resize_size}")
  if rng is None:
    return Geometry(image_size, image_size, 0, 0, False)
  span = resize_size - image_size
  x0, y0 = (int(v) for v in rng.integers(0, span + 1, size=2))
  return Geometry(resize_size, image_size, x0, y0, bool(flip and rng.random() < 0.5))


def network_image(frame: np.ndarray, geo: Geometry) -> np.ndarray:
  """A decoded frame (any size) resized, cropped and flipped as geo says: uint8 [S, S, 3]."""
  return crop_flip(resize(frame, geo.resize_size), geo)


def crop_flip(image: np.ndarray, geo: Geometry) -> np.ndarray:
  """Crops an already resized square image and flips it horizontally if asked."""
  out = image[geo.y0:geo.y0 + geo.image_size, geo.x0:geo.x0 + geo.image_size]
  if geo.flip:
    out = out[:, ::-1]
  return np.ascontiguousarray(out)


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float,
                 saturation: float) -> np.ndarray:
  """Multiplies brightness by U[1-b, 1+b] and saturation (HSV S) by U[1-s, 1+s]; uint8 RGB."""
  out = image
  if saturation > 0:
    hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] *= rng.uniform(1 - saturation, 1 + saturation)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
  if brightness > 0:
    factor = rng.uniform(1 - brightness, 1 + brightness)
    out = np.clip(out.astype(np.float32) * factor, 0, 255).astype(np.uint8)
  return out


def transform_box(box, geo: Geometry) -> np.ndarray:
  """Maps a box (x0, y0, x1, y1) normalised to the full frame into the network image.

  The result is clipped to [0, 1]; a box wholly outside the crop becomes degenerate.
  """
  x0, y0, x1, y1 = (float(v) * geo.resize_size for v in box)
  s = float(geo.image_size)
  nx0, nx1 = (x0 - geo.x0) / s, (x1 - geo.x0) / s
  ny0, ny1 = (y0 - geo.y0) / s, (y1 - geo.y0) / s
  if geo.flip:
    nx0, nx1 = 1.0 - nx1, 1.0 - nx0
  return np.clip(np.array([nx0, ny0, nx1, ny1], np.float32), 0.0, 1.0)


def image_input(frame: np.ndarray, data_cfg, rng: np.random.Generator | None):
  """The network image from a decoded frame: (uint8 [S, S, 3], Geometry).

  With rng (training with data_cfg.augment) random crop, flip and colour jitter; without, the
  whole frame resized to image_size.
  """
  aug = rng is not None and data_cfg.augment
  geo = sample_geometry(rng if aug else None, data_cfg.resize_size, data_cfg.image_size,
                        data_cfg.flip)
  image = network_image(frame, geo)
  if aug:
    image = color_jitter(image, rng, data_cfg.brightness, data_cfg.saturation)
  return image, geo
