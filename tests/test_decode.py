"""Decoding: the right frame for a time, the right audio window, any rate and channel count."""

import av
import numpy as np
import pytest

import media_factory as mf
import real_media
from data_pipeline import decode

SECONDS = 3.0
# (file name, write_video kwargs, amplitude tolerance: lossy codecs shift the level a little).
FORMATS = [
    ("h264_aac.mp4", dict(), 0.01),
    ("vp9_opus.webm", dict(vcodec="vp9", acodec="opus", sample_rate=48000), 0.01),
    ("h264_mp3_stereo.mkv", dict(acodec="mp3", sample_rate=22050, channels=2), 0.05),
    ("mpeg4_pcm_51.avi", dict(vcodec="mpeg4", acodec="pcm_s16le", channels=6,
                              sample_rate=44100), 0.01),
    ("mjpeg_aac_2997.mov", dict(vcodec="mjpeg", fps=29.97), 0.01),
    ("h264_flac_odd.mkv", dict(acodec="flac", fps=12.5, sample_rate=32000), 0.01),
]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
  folder = tmp_path_factory.mktemp("decode")
  return {name: (mf.write_video(str(folder / name), seconds=SECONDS, **kw), kw, tol)
          for name, kw, tol in FORMATS}


@pytest.mark.parametrize("name", [f[0] for f in FORMATS])
def test_frame_at_time(media, name):
  path, kw, _ = media[name]
  fps = kw.get("fps", 8)
  count = int(round(SECONDS * fps))
  for t in [0.0, 0.3, 1.01, 1.7, 2.5, SECONDS - 0.01]:
    image = decode.read_frame(path, t)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    # The frame shown at t: last frame whose timestamp i / fps is <= t.
    assert mf.frame_index_of(image) == min(int(np.floor(t * fps + 1e-9)), count - 1), t
  assert mf.frame_index_of(decode.read_frame(path, -1.0)) == 0
  assert mf.frame_index_of(decode.read_frame(path, SECONDS + 5)) == count - 1


@pytest.mark.parametrize("name", [f[0] for f in FORMATS])
def test_audio_window_centre_and_length(media, name):
  path, _, tol = media[name]
  for rate in (16000, 22050, 48000):
    for centre in (0.6, 1.5, 2.4):
      audio = decode.read_audio(path, centre, 0.2, rate)
      assert audio.dtype == np.float32 and audio.shape == (round(0.2 * rate),)
      # The tone's amplitude rises linearly over the file: the window's level gives its centre.
      peak = np.sqrt(2 * np.mean(audio.astype(np.float64) ** 2))
      assert peak == pytest.approx(mf.amplitude_at(centre, SECONDS), rel=tol + 0.01), (rate, centre)


def test_audio_window_is_exact_on_pcm(tmp_path):
  path = mf.write_wav(str(tmp_path / "tone.wav"), seconds=SECONDS, sample_rate=16000)
  reference = mf.tone(SECONDS, 16000)
  audio = decode.read_audio(path, 1.25, 1.0, 16000)
  np.testing.assert_allclose(audio, reference[12000:28000], atol=2 / 32767)
  # Outside the file: zeros; inside: the signal.
  head = decode.read_audio(path, 0.25, 1.0, 16000)
  assert np.all(head[:4000] == 0)
  np.testing.assert_allclose(head[4000:], reference[:12000], atol=2 / 32767)
  tail = decode.read_audio(path, SECONDS, 1.0, 16000)
  np.testing.assert_allclose(tail[:8000], reference[-8000:], atol=2 / 32767)
  assert np.all(tail[8000:] == 0)


def test_resampling_keeps_frequency_and_level(tmp_path):
  path = mf.write_video(str(tmp_path / "a.mp4"), sample_rate=44100, channels=2, tone_hz=1000.0)
  audio = decode.read_audio(path, 1.5, 1.0, 16000)
  spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
  assert np.argmax(spectrum) * 16000 / audio.size == pytest.approx(1000.0, abs=2.0)
  assert np.sqrt(2 * np.mean(audio ** 2)) == pytest.approx(mf.amplitude_at(1.5, SECONDS), rel=0.03)


def test_image_and_wav(tmp_path):
  image_path = mf.write_image(str(tmp_path / "x.jpg"), index=77)
  for t in (0.0, 3.7):
    image = decode.read_frame(image_path, t)
    assert image.shape == (64, 64, 3) and mf.frame_index_of(image) == 77
  wav = mf.write_wav(str(tmp_path / "x.wav"), sample_rate=8000, channels=2)
  assert decode.read_audio(wav, 1.0, 1.0, 16000).shape == (16000,)
  audio = decode.read_audio(wav, 1.0, 0.2, 16000)
  assert np.sqrt(2 * np.mean(audio ** 2)) == pytest.approx(mf.amplitude_at(1.0, SECONDS), rel=0.03)


def test_errors_are_decode_errors(tmp_path):
  text = tmp_path / "text.mp4"
  text.write_text("not a video\n" * 20)
  with pytest.raises(decode.DecodeError, match="not a media file"):
    decode.read_frame(str(text), 0.0)
  silent_video = mf.write_video(str(tmp_path / "v.mp4"), audio=False)
  with pytest.raises(decode.DecodeError, match="no audio stream"):
    decode.read_audio(silent_video, 1.0, 1.0, 16000)
  audio_only = mf.write_video(str(tmp_path / "a.m4a"), video=False)
  with pytest.raises(decode.DecodeError, match="no video stream"):
    decode.read_frame(audio_only, 1.0)
  with pytest.raises(decode.DecodeError, match="cannot open"):
    decode.read_frame(str(tmp_path / "missing.mp4"), 0.0)


def test_a_read_cut_short_by_its_time_limit_is_a_timeout_not_a_bad_file(tmp_path):
  """FFmpeg's interrupt of an open in progress can read as "Invalid data found" (seen with
  0.1-1 ms limits on a 10 s video): a good file under a too-short limit must fail as
  DecodeTimeout (transient, never cached), never as a verdict that the file is not media."""
  path = mf.write_video(str(tmp_path / "ten_seconds.mp4"), seconds=10.0)
  reasons = []
  for limit in (1e-3, 5e-4, 2e-4, 1e-4, 5e-5, 1e-5, 1e-6):
    for read in (lambda: decode.media_info(path, timeout_s=limit),
                 lambda: decode.read_frame(path, 1.0, timeout_s=limit),
                 lambda: decode.read_audio(path, 1.0, 1.0, 16000, timeout_s=limit)):
      for _ in range(3):
        try:
          read()
        except decode.DecodeTimeout:
          reasons.append("timeout")
        except decode.DecodeError as e:
          reasons.append(str(e))
  assert "timeout" in reasons  # 1 microsecond is always too short
  assert set(reasons) == {"timeout"}, sorted(set(reasons))


def _all_audio_mean(path):
  """The whole track decoded and averaged over channels, for comparison."""
  chunks = []
  with av.open(path) as container:
    for frame in container.decode(container.streams.audio[0]):
      chunks.append(frame.to_ndarray().reshape(len(frame.layout.channels), -1))
  return np.concatenate(chunks, axis=1).mean(axis=0)


def damaged_in_the_middle(path: str) -> str:
  """A 6 s video whose bytes from 45% to 50% are noise, as a bad sector or a broken copy
  leaves it; returns the damaged copy's path."""
  mf.write_video(path, seconds=6.0, fps=8, size=(64, 64))
  data = bytearray(open(path, "rb").read())
  a, b = int(len(data) * 0.45), int(len(data) * 0.50)
  data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
  damaged = path.replace(".mp4", "_damaged.mp4")
  with open(damaged, "wb") as f:
    f.write(bytes(data))
  return damaged


def test_a_damaged_middle_is_an_error_not_an_older_frame_or_zeros(tmp_path):
  """Where the frames or sound at t cannot be decoded, reading t fails; it never gives the
  last good frame from seconds earlier, or silence the file does not hold."""
  path = damaged_in_the_middle(str(tmp_path / "v.mp4"))
  errors = 0
  for t in np.arange(0.5, 5.51, 0.25):
    try:
      _, frame_t = decode.read_frame_with_time(path, float(t))
      assert frame_t >= t - 0.5, (t, frame_t)
    except decode.DecodeError as e:
      assert "no video frame at" in str(e) or "decoding failed" in str(e)
      errors += 1
    try:
      wave = decode.read_audio(path, float(t), 1.0, 16000)
      assert np.mean(wave == 0) < 0.05, t
    except decode.DecodeError as e:
      assert "audio" in str(e)
      errors += 1
  assert errors >= 4
  # The undamaged start still reads.
  assert decode.read_frame_with_time(path, 0.5)[1] == pytest.approx(0.5)


def test_bigbuckbunny_51_downmix_48k():
  path = real_media.fetch("bigbuckbunny.mp4")
  info = decode.media_info(path)
  assert (info["audio_rate"], info["audio_channels"], info["fps"]) == (48000, 6, 25.0)
  image, frame_time = decode.read_frame_with_time(path, 2.51)
  assert image.shape == (720, 1280, 3) and frame_time == pytest.approx(2.48)
  audio = decode.read_audio(path, 2.5, 1.0, 48000)
  assert audio.shape == (48000,) and np.abs(audio).max() > 1e-3
  # Same samples as decoding everything and averaging the six channels.
  reference = _all_audio_mean(path)[2 * 48000:3 * 48000]
  np.testing.assert_allclose(audio, reference, atol=1e-5)
  assert decode.read_audio(path, 2.5, 1.0, 16000).shape == (16000,)


def test_earth_silent_track_decodes_to_zeros():
  path = real_media.fetch("earth.mp4")
  assert decode.read_frame(path, 10.0).shape == (270, 480, 3)
  assert np.all(decode.read_audio(path, 10.0, 1.0, 48000) == 0)
