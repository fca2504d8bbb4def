"""The decoded-clip cache serves the frames and audio that seeking reads give, within bounds."""

import numpy as np
import pytest

from data_pipeline import clip_cache, decode, features
import media_factory as mf


@pytest.fixture(scope="module")
def video(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("cache") / "clip.mp4")
  return mf.write_video(path, seconds=3.0, fps=8, size=(96, 80), sample_rate=16000)


def test_frames_are_the_seeking_reads_resized(video):
  cache = clip_cache.ClipCache(64, 10, resize_size=48, sample_rate=16000)
  for t in (0.0, 0.06, 0.125, 1.3, 2.49, 2.875, 5.0):
    want = features.resize(decode.read_frame(video, t), 48)
    got = cache.frame(video, t)
    np.testing.assert_array_equal(got, want, err_msg=f"t={t}")
    assert mf.frame_index_of(got) == mf.frame_index_of(want)


def test_audio_windows_match_seeking_reads(video):
  cache = clip_cache.ClipCache(64, 10, resize_size=48, sample_rate=16000)
  for center in (0.2, 1.0, 1.5, 2.9):
    want = decode.read_audio(video, center, 1.0, 16000)
    got = cache.audio(video, 3.0, center, 1.0)
    assert got.shape == want.shape == (16000,)
    # Same decoder output; only AAC's start-up differs between a whole and a seeking read.
    assert np.corrcoef(got, want)[0, 1] > 0.99, center
    np.testing.assert_allclose(np.abs(got).mean(), np.abs(want).mean(), rtol=0.05)


def test_memory_bound_evicts_least_recently_used(tmp_path, video):
  other = mf.write_video(str(tmp_path / "other.mp4"), seconds=3.0, size=(96, 80))
  one_clip = 24 * 48 * 48 * 3  # bytes of one clip's resized frames
  cache = clip_cache.ClipCache(1.5 * one_clip / 2**20, 10, resize_size=48, sample_rate=16000)
  first = cache.frame(video, 1.0).copy()
  cache.frame(other, 1.0)
  assert list(cache._frames) == [other]  # pylint: disable=protected-access
  np.testing.assert_array_equal(cache.frame(video, 1.0), first)  # decoded again, same pixels


def test_long_clips_and_images_are_not_cached():
  cache = clip_cache.ClipCache(64, 10, resize_size=48, sample_rate=16000)
  assert not cache.covers("a.mp4", 60.0) and not cache.covers("a.jpg", 1.0)
  assert cache.covers("a.mp4", 3.0)
