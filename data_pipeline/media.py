"""Facts about media files shared by the decoders, the dataset formats and `avjax.embed`.

Which file extensions are audio, images and videos; how a PyAV audio frame becomes mono; how a
failure is said in one line; and the shape of the spectrogram the data settings give.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Optional

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".webm", ".mkv", ".avi", ".mov", ".mpg", ".mpeg", ".flv",
                    ".3gp", ".ts", ".ogv")
_KINDS = (("audio", AUDIO_EXTENSIONS), ("image", IMAGE_EXTENSIONS), ("video", VIDEO_EXTENSIONS))


def media_kind(path: str) -> Optional[str]:
  """"audio", "image", "video" or None, by the file's extension."""
  ext = os.path.splitext(path)[1].lower()
  for kind, extensions in _KINDS:
    if ext in extensions:
      return kind
  return None


def mono_samples(frame) -> np.ndarray:
  """A PyAV audio frame as float32 mono: channels averaged, integers scaled to [-1, 1]."""
  samples = frame.to_ndarray()
  if samples.dtype.kind in "iu":
    samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max)
  channels = len(frame.layout.channels)
  if not frame.format.is_planar:
    samples = samples.reshape(-1, channels).T
  return samples.reshape(channels, -1).astype(np.float32).mean(axis=0)


def failure_reason(err: BaseException, limit: int = 200) -> str:
  """The first line of an exception's message (its OS reason when it has one), at most limit
  characters; the exception's type name when the message is empty. A longer line keeps its
  start and its end around " ... ": libraries put the path first and the cause last."""
  text = str(getattr(err, "strerror", None) or err).strip()
  line = (text.splitlines() or [type(err).__name__])[0]
  if len(line) <= limit:
    return line
  tail = limit // 3
  return f"{line[:limit - tail - 5]} ... {line[-tail:]}"


def spectrogram_shape(settings) -> tuple[int, int, int]:
  """(frequency bins, time frames, 1) of the log-spectrogram: n_fft // 2 + 1 by spec_frames.

  Args:
    settings: the data config (attributes) or an export's preprocessing dict (keys).
  """
  if isinstance(settings, Mapping):
    n_fft, frames = settings["n_fft"], settings["spec_frames"]
  else:
    n_fft, frames = settings.n_fft, settings.spec_frames
  return (n_fft // 2 + 1, frames, 1)
