"""Media facts: kinds by extension, the mono down-mix of PyAV frames, one-line failure reasons
and the spectrogram shape of data configs and export settings."""

import av
import numpy as np
import pytest

from data_pipeline import config
from data_pipeline import media


@pytest.mark.parametrize("path, kind", [
    ("a/tone.WAV", "audio"), ("x.opus", "audio"), ("still.jpeg", "image"), ("p.webp", "image"),
    ("clip.mp4", "video"), ("dir.d/clip.ogv", "video"), ("notes.txt", None), ("wav", None),
    (".jpg", None)])
def test_media_kind_by_extension(path, kind):
  assert media.media_kind(path) == kind


def test_extension_lists_do_not_overlap():
  kinds = [media.AUDIO_EXTENSIONS, media.IMAGE_EXTENSIONS, media.VIDEO_EXTENSIONS]
  every = [ext for exts in kinds for ext in exts]
  assert len(every) == len(set(every))
  assert all(ext == ext.lower() and ext.startswith(".") for ext in every)


@pytest.mark.parametrize("fmt", ["s16", "s16p", "fltp", "flt", "s32p"])
def test_mono_samples_averages_channels_and_scales_integers(fmt):
  left = np.linspace(-0.5, 0.5, 64, dtype=np.float32)
  right = np.full(64, 0.25, np.float32)
  wave = np.stack([left, right])
  if fmt.startswith("s16"):
    data = np.round(wave * 32767).astype(np.int16)
  elif fmt.startswith("s32"):
    data = np.round(wave.astype(np.float64) * 2147483647).astype(np.int32)
  else:
    data = wave
  if not fmt.endswith("p"):
    data = data.T.reshape(1, -1)  # packed: samples interleaved L R L R ...
  frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout="stereo")
  mono = media.mono_samples(frame)
  assert mono.dtype == np.float32 and mono.shape == (64,)
  np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-4)


def test_failure_reason_is_one_short_line():
  assert media.failure_reason(OSError(2, "No such file or directory", "x.mp4")) == (
      "No such file or directory")
  assert media.failure_reason(ValueError("  first line\nsecond line")) == "first line"
  assert media.failure_reason(RuntimeError("")) == "RuntimeError"
  assert len(media.failure_reason(ValueError("x" * 500))) == 200
  # The cause at the end of a long line survives the cut.
  long = ValueError("Error writing local file \"" + "/deep/folder" * 40 + "\": File too large")
  reason = media.failure_reason(long)
  assert len(reason) == 200 and reason.startswith("Error writing local file \"/deep/folder")
  assert reason.endswith("\": File too large") and " ... " in reason


def test_spectrogram_shape_of_configs_and_export_settings():
  cfg = config.default_data_config()
  assert media.spectrogram_shape(cfg) == (257, 200, 1)
  assert media.spectrogram_shape(dict(n_fft=256, spec_frames=100)) == (129, 100, 1)
