"""The streaming reader: block-wise resampling equal to resampling the whole signal, audio
windows every hop equal to the seeking decoder's, frames at every frame time with the audio
around them, and one-line errors for files it cannot read."""

import numpy as np
import pytest
from scipy import signal as sp_signal

import media_factory as mf
from data_pipeline import decode
from data_pipeline import stream

RATE = 8000


def _reader(path, kind, hop=0.25, frame_hop=1.0):
  """A reader whose 'network inputs' are the raw waves and RGB frames."""
  return stream.MediaReader(path, kind, sample_rate=RATE, window_seconds=1.0, hop=hop,
                            frame_hop=frame_hop, spectrogram=lambda wave: wave,
                            preprocess_image=lambda frame: frame)


@pytest.mark.parametrize("src_rate, dst_rate", [(44100, 16000), (16000, 48000), (8000, 8000)])
def test_resampling_in_pieces_equals_resampling_the_whole(src_rate, dst_rate):
  x = np.random.default_rng(0).standard_normal(3 * src_rate + 123).astype(np.float32)
  resampler = stream.StreamResampler(src_rate, dst_rate)
  cuts = np.sort(np.random.default_rng(1).integers(0, len(x), 40))
  pieces = [resampler.push(part) for part in np.split(x, cuts)] + [resampler.flush()]
  g = np.gcd(src_rate, dst_rate)
  whole = sp_signal.resample_poly(x, dst_rate // g, src_rate // g)
  np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)


def test_samples_keep_the_recent_part_of_the_stream():
  samples = stream.Samples()
  samples.extend(np.arange(10, dtype=np.float32))
  samples.drop_before(4)
  samples.extend(np.arange(10, 13, dtype=np.float32))
  assert samples.start == 4 and samples.total == 13
  np.testing.assert_array_equal(samples.window(2, 5), [0, 0, 4, 5, 6])
  np.testing.assert_array_equal(samples.window(11, 4), [11, 12, 0, 0])


def test_audio_windows_are_the_seeking_decoders_windows(tmp_path):
  path = mf.write_wav(str(tmp_path / "tone.wav"), seconds=3.0, sample_rate=44100, channels=2)
  reader = _reader(path, "audio")
  items = list(reader.items())
  assert [kind for kind, *_ in items] == ["audio"] * 9 and reader.has_audio
  np.testing.assert_allclose([t for _, t, _ in items], 0.5 + 0.25 * np.arange(9))
  for _, t, wave in items:
    np.testing.assert_allclose(wave, decode.read_audio(path, t, 1.0, RATE), atol=1e-4)
  assert reader.position == pytest.approx(3.0)


def test_a_file_shorter_than_a_window_gets_one_padded_window(tmp_path):
  path = mf.write_wav(str(tmp_path / "short.wav"), seconds=0.4, sample_rate=RATE)
  (item,) = _reader(path, "audio").items()
  assert item[:2] == ("audio", 0.5)
  np.testing.assert_allclose(item[2][:int(0.4 * RATE)], mf.tone(0.4, RATE), atol=1e-4)
  assert not item[2][int(0.4 * RATE):].any()


def test_video_frames_at_each_frame_time_with_their_audio(tmp_path):
  path = mf.write_video(str(tmp_path / "clip.mp4"), seconds=3.0, fps=8)
  reader = _reader(path, "video", frame_hop=0.5)
  frames = [item for item in reader.items() if item[0] == "frame"]
  times = [t for _, t, _, _ in frames]
  assert times == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
  assert [mf.frame_index_of(image) for _, _, image, _ in frames] == [
      mf.frame_index_of(decode.read_frame(path, t)) for t in times]
  for _, t, _, wave in frames:
    np.testing.assert_allclose(wave, decode.read_audio(path, t, 1.0, RATE), atol=1e-3)


def test_video_without_sound_gives_frames_without_audio(tmp_path):
  path = mf.write_video(str(tmp_path / "mute.mp4"), seconds=2.5, audio=False)
  reader = _reader(path, "video")
  items = list(reader.items())
  assert [(kind, t, spec) for kind, t, _, spec in items] == [
      ("frame", 0.0, None), ("frame", 1.0, None), ("frame", 2.0, None)]
  assert not reader.has_audio


def test_unreadable_files_are_one_line_decode_errors(tmp_path):
  empty = tmp_path / "empty.wav"
  empty.write_bytes(b"")
  text = tmp_path / "text.mp4"
  text.write_text("not a video " * 50)
  mute = mf.write_video(str(tmp_path / "mute.mp4"), seconds=1.5, audio=False)
  for path, kind, message in [(str(empty), "audio", "empty file"),
                              (str(tmp_path), "audio", "not a file"),
                              (str(text), "video", "not a media file ("),
                              (mute, "audio", "no audio stream")]:
    with pytest.raises(decode.DecodeError) as info:
      list(_reader(path, kind).items())
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
