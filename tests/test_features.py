"""Tests of the spectrogram and the image/box transforms."""

import cv2
import ml_collections
import numpy as np
import pytest

from data_pipeline import config, features


def _demo_cfg():
  cfg = config.default_data_config()
  cfg.update(dict(sample_rate=16000, n_fft=256, win_length=160, hop_length=160,
                  spec_frames=100, image_size=112, resize_size=128))
  return cfg


@pytest.mark.parametrize("cfg,shape", [(config.default_data_config(), (257, 200, 1)),
                                       (_demo_cfg(), (129, 100, 1))])
def test_spectrogram_shapes(cfg, shape):
  wave = np.random.default_rng(0).normal(size=cfg.sample_rate).astype(np.float32)
  spec = features.spectrogram_from_config(wave, cfg)
  assert spec.shape == shape and spec.dtype == np.float32


def test_silence_is_finite():
  cfg = config.default_data_config()
  spec = features.spectrogram_from_config(np.zeros(48000, np.float32), cfg)
  assert np.all(np.isfinite(spec))
  np.testing.assert_allclose(spec, np.log(cfg.log_eps), rtol=1e-6)


def test_matches_numpy_stft_for_one_window():
  cfg = config.default_data_config()
  wave = np.random.default_rng(1).normal(size=48000).astype(np.float32)
  spec = features.spectrogram_from_config(wave, cfg)
  frame = 50  # an interior frame: centred at sample frame * hop, no padding involved
  win = np.zeros(cfg.n_fft)
  off = (cfg.n_fft - cfg.win_length) // 2
  n = np.arange(cfg.win_length)
  win[off:off + cfg.win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win_length)  # periodic hann
  start = frame * cfg.hop_length - cfg.n_fft // 2
  ref = np.log(np.abs(np.fft.rfft(wave[start:start + cfg.n_fft] * win)) + cfg.log_eps)
  np.testing.assert_allclose(spec[:, frame, 0], ref, atol=1e-3)


def test_gain_is_one_factor_within_range():
  rng = np.random.default_rng(0)
  wave = np.ones(100, np.float32)
  out = features.apply_gain(wave, rng, 0.1)
  assert np.all(out == out[0]) and 0.9 <= out[0] <= 1.1 and out[0] != 1.0


def test_box_follows_resize_crop_flip():
  # 200x100 frame -> 128 square -> crop 112 at (x0=10, y0=6).
  geo = features.Geometry(resize_size=128, image_size=112, x0=10, y0=6, flip=False)
  box = features.transform_box((0.25, 0.5, 0.75, 1.0), geo)
  np.testing.assert_allclose(box, [(32 - 10) / 112, (64 - 6) / 112, (96 - 10) / 112, 1.0],
                             atol=1e-6)
  flipped = features.transform_box((0.25, 0.5, 0.75, 1.0), features.Geometry(128, 112, 10, 6, True))
  np.testing.assert_allclose(flipped, [1 - box[2], box[1], 1 - box[0], box[3]], atol=1e-6)


def test_image_pixels_follow_box():
  cfg = _demo_cfg()
  frame = np.zeros((100, 200, 3), np.uint8)
  frame[50:100, 50:150] = 255  # box (0.25, 0.5, 0.75, 1.0)
  for seed in range(4):
    image, geo = features.image_input(frame, dict_cfg(cfg, brightness=0, saturation=0),
                                      np.random.default_rng(seed))
    x0, y0, x1, y1 = features.transform_box((0.25, 0.5, 0.75, 1.0), geo) * 112
    inside = image[int(y0) + 2:int(y1) - 2, int(x0) + 2:int(x1) - 2]
    assert image.shape == (112, 112, 3) and inside.min() > 200
    assert image[:int(y0) - 2].max() < 50


def test_evaluation_image_is_the_whole_frame_resized():
  # The published localisation protocols resize the whole frame to the net's input: a box at
  # the frame's edge keeps all its area, where a 128 -> 112 centre crop would cut 1/8 of it.
  cfg = _demo_cfg()
  frame = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
  image, geo = features.image_input(frame, cfg, None)  # shrinking: area filter
  np.testing.assert_array_equal(image, cv2.resize(frame, (112, 112), interpolation=cv2.INTER_AREA))
  edge = (0.0, 0.0, 0.25, 0.5)
  np.testing.assert_allclose(features.transform_box(edge, geo), edge, atol=1e-7)


def test_colour_jitter_changes_image_keeps_dtype():
  rng = np.random.default_rng(0)
  image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
  out = features.color_jitter(image, rng, 0.2, 0.2)
  assert out.dtype == np.uint8 and out.shape == image.shape and not np.array_equal(out, image)


def dict_cfg(cfg, **kw):
  cfg = ml_collections.ConfigDict(cfg.to_dict())
  cfg.update(kw)
  return cfg
