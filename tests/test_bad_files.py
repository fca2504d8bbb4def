"""Unusable input is skipped with its reason; hostile files cannot stall or sink indexing."""

import os
import shutil
import signal
import time

import numpy as np
import pytest

import media_factory as mf
import real_media
from data_pipeline import decode
from data_pipeline import index
from data_pipeline import media_check
from data_pipeline.clips import DataError
from data_pipeline.config import default_data_config


def _cfg(root, cache, **kw):
  cfg = default_data_config()
  cfg.root, cfg.cache_dir = str(root), str(cache)
  for key, value in kw.items():
    cfg[key] = value
  return cfg


def _cut(src, dst, fraction):
  with open(src, "rb") as f:
    data = f.read()
  with open(dst, "wb") as f:
    f.write(data[:int(len(data) * fraction)])


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
  """One folder holding every kind of bad file next to some good ones; expected reasons."""
  root = tmp_path_factory.mktemp("bad")
  good = mf.write_video(str(root / "good.mp4"))
  mf.write_video(str(root / "odd_rate_51.mkv"), fps=23.976, channels=6, sample_rate=44100)
  mf.write_video(str(root / "frames_4k.mp4"), size=(3840, 2160), fps=2, seconds=1.5)
  shutil.copy(real_media.fetch("bigbuckbunny.mp4"), root / "bigbuckbunny.mp4")
  shutil.copy(real_media.fetch("earth.mp4"), root / "earth.mp4")
  (root / "empty.mp4").write_bytes(b"")
  (root / "text.mp4").write_text("this is not a video\n" * 50)
  _cut(good, root / "cut_header.mp4", 0.3)  # mp4 index (moov) is at the end: unreadable
  mf.write_video(str(root / "whole.mkv"), seconds=3.0)
  _cut(root / "whole.mkv", root / "cut_half.mkv", 0.5)
  os.remove(root / "whole.mkv")
  mf.write_video(str(root / "no_audio.mp4"), audio=False)
  mf.write_video(str(root / "no_video.mp4"), video=False)
  mf.write_video(str(root / "silent.webm"), vcodec="vp9", acodec="opus", sample_rate=48000,
                 silent=True)
  mf.write_video(str(root / "short.mp4"), seconds=0.5)
  os.mkfifo(root / "fifo.mp4")
  os.symlink(root / "gone.mp4", root / "dangling.mp4")
  expected = {
      "empty.mp4": "empty file", "text.mp4": "not a media file",
      "cut_header.mp4": "not a media file", "cut_half.mkv": "truncated",
      "no_audio.mp4": "no audio stream", "no_video.mp4": "no video stream",
      "silent.webm": "silent audio", "earth.mp4": "silent audio",
      "short.mp4": "shorter than 1 s", "fifo.mp4": "not a regular file",
      "dangling.mp4": "missing file"}
  return str(root), expected


def test_bad_files_skipped_with_reasons(bad_folder, tmp_path, capsys):
  root, expected = bad_folder
  ds = index.load_dataset(_cfg(root, tmp_path / "cache"))
  reasons = {os.path.basename(p): index.reason_kind(r) for p, r in ds.skipped}
  assert reasons == expected
  usable = {c.clip_id: c for c in ds.clips}
  assert sorted(usable) == ["bigbuckbunny", "frames_4k", "good", "odd_rate_51"]
  assert (usable["bigbuckbunny"].audio_rate, usable["bigbuckbunny"].audio_channels) == (48000, 6)
  assert usable["odd_rate_51"].fps == pytest.approx(23.976, abs=1e-3)
  assert usable["odd_rate_51"].audio_channels == 6
  assert decode.read_frame(usable["frames_4k"].path, 1.0).shape == (2160, 3840, 3)
  # Console: a count per reason and where the full list is; the log names every file.
  err = capsys.readouterr().err
  assert "silent audio: 2" in err and "not a media file: 2" in err and ds.log_path in err
  with open(ds.log_path) as f:
    log = f.read()
  assert all(os.path.join(root, name) in log for name in expected)


def test_real_files_probe(bad_folder):
  root, _ = bad_folder
  bunny = media_check.probe_file(os.path.join(root, "bigbuckbunny.mp4"))
  assert bunny["ok"] and (bunny["width"], bunny["height"], bunny["fps"]) == (1280, 720, 25.0)
  assert bunny["duration"] == pytest.approx(5.28, abs=0.05)
  assert media_check.probe_file(os.path.join(root, "earth.mp4"))["reason"] == "silent audio"


def test_no_usable_clip_is_one_data_error(tmp_path):
  mf.write_video(str(tmp_path / "data" / "silent.mp4"), silent=True)
  (tmp_path / "data" / "junk.avi").write_text("junk")
  with pytest.raises(DataError, match=r"no usable clip .*2 skipped .*silent audio: 1"):
    index.load_dataset(_cfg(tmp_path / "data", tmp_path / "cache"), progress=False)


def test_fifo_does_not_block_decoding(tmp_path):
  os.mkfifo(tmp_path / "pipe.mp4")
  start = time.monotonic()
  with pytest.raises(decode.DecodeError, match="not a regular file"):
    decode.read_frame(str(tmp_path / "pipe.mp4"), 0.0)
  assert time.monotonic() - start < 60  # would block forever; 60 s: a hang guard, not a speed target


def hostile_probe(path, audio_path, timeout_s):
  """A probe that hangs, eats memory or crashes on files named for it (runs in a worker)."""
  name = os.path.basename(path)
  if name.startswith("hang"):
    time.sleep(3600)
  if name.startswith("balloon"):
    # The limit counts address space: untouched pages reach it at once, however busy the
    # machine (writing 2 GB first can outlast the 3 s timeout on loaded cores).
    hoard = []
    while True:
      hoard.append(np.empty(64 * 2**20, np.uint8))
  if name.startswith("crash"):
    os.kill(os.getpid(), signal.SIGSEGV)
  return media_check.probe_file(path, audio_path, timeout_s)


def test_hostile_files_are_given_up(tmp_path):
  root = tmp_path / "hostile"
  for name in ("hang.mp4", "balloon.mp4", "crash.mp4", "fine.mp4", "fine2.mp4"):
    mf.write_video(str(root / name), seconds=1.5)
  start = time.monotonic()
  ds = index.load_dataset(_cfg(root, tmp_path / "cache", per_file_timeout_s=3.0),
                          probe_fn=hostile_probe, memory_limit_mb=2048, progress=False)
  reasons = {os.path.basename(p): index.reason_kind(r) for p, r in ds.skipped}
  assert reasons == {"hang.mp4": "timed out after 3 s", "balloon.mp4": "out of memory",
                     "crash.mp4": "decoder crashed"}
  assert sorted(c.clip_id for c in ds.clips) == ["fine", "fine2"]
  # Hang guard only: two 3 s limits (the retry alone) plus worker start-ups.
  assert time.monotonic() - start < 120
  # Each of the three failures may be the machine's (load, memory, a worker that could not
  # start): none is remembered, the next run probes them again and caches only the good files.
  again = index.load_dataset(_cfg(root, tmp_path / "cache", per_file_timeout_s=3.0),
                             probe_fn=hostile_probe, progress=False)
  assert again.probed == 3
  assert {os.path.basename(p) for p, _ in again.skipped} == set(reasons)


def slow_first_time_probe(path, audio_path, timeout_s):
  """Stands in for a loaded machine: each file's first probe runs past the limit."""
  marker = path + ".seen"
  if not os.path.exists(marker):
    open(marker, "w").close()
    time.sleep(3600)
  return media_check.probe_file(path, audio_path, timeout_s)


def test_a_file_timed_out_on_a_busy_machine_is_tried_again_alone(tmp_path):
  root = tmp_path / "videos"
  for name in ("a.mp4", "b.mp4", "c.mp4"):
    mf.write_video(str(root / name), seconds=1.5)
  (root / "a.mp4.seen").touch()  # a and b probe at once, c times out the first time
  (root / "b.mp4.seen").touch()
  ds = index.load_dataset(_cfg(root, tmp_path / "cache", per_file_timeout_s=2.0),
                          probe_fn=slow_first_time_probe, progress=False)
  assert sorted(c.clip_id for c in ds.clips) == ["a", "b", "c"] and not ds.skipped


def test_a_too_short_time_limit_is_not_remembered(tmp_path):
  root = tmp_path / "videos"
  for name in ("a.mp4", "b.mp4"):
    mf.write_video(str(root / name), seconds=1.5)
  with pytest.raises(index.DataError, match="probed again on the next run.*per_file_timeout_s"):
    index.load_dataset(_cfg(root, tmp_path / "cache", per_file_timeout_s=1e-6), progress=False)
  # The next run with the default limit finds both files good.
  ds = index.load_dataset(_cfg(root, tmp_path / "cache"), progress=False)
  assert sorted(c.clip_id for c in ds.clips) == ["a", "b"] and ds.probed == 2


def crashing_probe(path, audio_path, timeout_s):
  os.kill(os.getpid(), signal.SIGSEGV)


def test_workers_that_all_die_are_reported_as_such(tmp_path):
  root = tmp_path / "videos"
  for name in ("a.mp4", "b.mp4"):
    mf.write_video(str(root / name), seconds=1.0)
  with pytest.raises(index.DataError, match="every probe worker died"):
    index.load_dataset(_cfg(root, tmp_path / "cache"), probe_fn=crashing_probe, progress=False)
