"""Processes and storage that fail: a Grain worker killed mid-decode, or 8 clips in a row that
fail to decode, make the trainer save the step it reached and say so in one line, naming the
files; a trainer killed with SIGKILL leaves no worker behind; a checkpoint that cannot be written
stops the run in one line."""

import glob
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from avjax import config as config_lib
from avjax.train import input_guard, loop
from data_pipeline import decode, decoding_marks, media_check, pipeline
from data_pipeline.clips import DataError
from test_train import latest_step
import limits
import media_factory as mf

# Hang guards only (a loaded 2-core machine compiles and starts workers slowly).
_START_LIMIT_S = limits.HANG_S
_EXIT_LIMIT_S = 300


def _children(pid: int) -> list[int]:
  """Pids of the live Grain worker processes (multiprocessing spawn children) of pid."""
  return [p for p, status in input_guard.worker_processes(pid).items()
          if not status.startswith("Z")]


def _wait_for_training(metrics: str, alive=lambda: True) -> None:
  deadline = time.monotonic() + _START_LIMIT_S
  while not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
    assert alive(), "the trainer ended before its first step"
    assert time.monotonic() < deadline, f"training did not start in {_START_LIMIT_S} s"
    time.sleep(0.3)


def _kill_while_decoding(marks_parent: str) -> tuple[int, str]:
  """SIGKILLs a worker caught in the middle of a decode: each worker is frozen (SIGSTOP) in
  turn and its decoding mark read; a marked one is killed, the others go on (SIGCONT)."""
  deadline = time.monotonic() + _START_LIMIT_S
  while time.monotonic() < deadline:
    for pid in _children(os.getpid()):
      os.kill(pid, signal.SIGSTOP)
      folders = glob.glob(os.path.join(marks_parent, "avjax-decoding-*"))
      files = decoding_marks.files_of(folders[0], pid) if folders else ""
      if files:
        os.kill(pid, signal.SIGKILL)  # as the OOM killer or a decoder crash does
        return pid, files
      os.kill(pid, signal.SIGCONT)
    time.sleep(0.01)
  raise AssertionError(f"no worker was caught decoding in {_START_LIMIT_S} s")


def test_a_killed_data_worker_saves_the_step_reached_and_says_so(tmp_path, embedded_dir,
                                                                 monkeypatch):
  workdir = str(tmp_path / "run")
  config = config_lib.get_config("avol:tiny", [
      "train.num_steps=100000", "train.log_every_steps=1",
      "train.checkpoint_every_steps=100000", "data.num_workers=2"])
  marks_parent = tmp_path / "tmp"
  marks_parent.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(marks_parent))  # where the loop's marks go
  killed = []

  def kill_a_worker():
    _wait_for_training(os.path.join(workdir, "metrics.jsonl"))
    killed.append(_kill_while_decoding(str(marks_parent)))

  killer = threading.Thread(target=kill_a_worker, daemon=True)
  killer.start()
  with pytest.raises(DataError) as failed:
    loop.train_and_evaluate(config, workdir)
  killer.join(5)
  assert killed
  message = str(failed.value)
  assert message.startswith("the input pipeline failed at step ") and "\n" not in message
  step = int(message.split("at step ")[1].split()[0])
  assert step >= 1 and f"checkpoint of step {step} in " in message, message
  assert latest_step(workdir) == step
  assert not _children(os.getpid())  # the other worker was stopped too
  # The line names the dead worker and the files it was decoding; the marks are removed.
  pid, files = killed[0]
  # ("died (killed by signal 9)" when the guard sees the zombie, "ended" once it is reaped)
  assert f"data worker process {pid} " in message
  assert f" while decoding {files}); checkpoint of step " in message
  assert files.startswith(embedded_dir) and ".mp4" in files, files
  assert not os.listdir(marks_parent)


def test_eight_clips_in_a_row_that_fail_to_decode_save_the_step_reached(tmp_path, embedded_dir,
                                                                        monkeypatch):
  """Storage lost in the middle of a run: every decode fails once 3 steps are logged (the
  batches read ahead before then are still used). Each failed clip is replaced and listed
  until 8 in a row have failed; then the step reached is saved and one line says so, naming
  the last file and its reason."""
  workdir = str(tmp_path / "run")
  config = config_lib.get_config("avol:tiny", ["train.num_steps=100000", "eval.every_steps=0",
                                               "train.checkpoint_every_steps=100000"])
  metrics = os.path.join(workdir, "metrics.jsonl")
  real = pipeline.decode_pair

  def decode_pair(clips, spec, data_cfg):
    if os.path.exists(metrics) and loop.count_lines(metrics) >= 3:
      raise decode.DecodeError("video decoding failed (Input/output error)")
    return real(clips, spec, data_cfg)

  monkeypatch.setattr(pipeline, "decode_pair", decode_pair)
  with pytest.raises(DataError) as failed:
    loop.train_and_evaluate(config, workdir)
  message = str(failed.value)
  assert "\n" not in message
  assert message.startswith("the input pipeline failed at step "), message
  step = int(message.split("at step ")[1].split()[0])
  assert step >= 3 and (f" of 100000 (DataError: 8 clips in a row failed to decode, last: "
                        f"{embedded_dir}") in message, message
  assert f"video decoding failed (Input/output error)); checkpoint of step {step} in " in message
  listed = os.path.join(workdir, loop.REPLACED_LOG)
  assert message.endswith(f"; replaced clips are listed in {listed}")
  assert latest_step(workdir) == step
  lines = open(listed).read().splitlines()
  assert len(lines) >= 8 and all("Input/output error" in line for line in lines)
  # Only the batches trained and the one that failed: none the pipeline had read ahead.
  positions = [int(line.split("\t")[0]) for line in lines]
  assert max(positions) < (step + 1) * config.train.batch_size, (step, max(positions))


def test_the_replaced_clips_log_keeps_the_rows_trained(tmp_path):
  log = tmp_path / "replaced_clips.tsv"
  # Two failed draws of row 3 may name the same clip: both kept.
  rows = ["3\tbad\ta.mp4\n", "17\tbad\tb.mp4\n", "3\tbad\ta.mp4\n", "9\tcut\tc.mp4\n",
          "40\tbad\td.mp4\n"]
  log.write_text("".join(rows))
  pipeline.trim_failure_log(str(log), 16)  # 2 steps of 8 rows trained
  assert log.read_text() == "3\tbad\ta.mp4\n3\tbad\ta.mp4\n9\tcut\tc.mp4\n"
  pipeline.trim_failure_log(str(log), 0)
  assert not log.exists()


def test_workers_do_not_outlive_a_trainer_killed_with_sigkill(tmp_path, embedded_dir):
  workdir = str(tmp_path / "run")
  proc = subprocess.Popen(
      [sys.executable, "-m", "avjax.main", "--experiment=avol:tiny", f"--workdir={workdir}",
       "--config.train.num_steps=100000", "--config.train.log_every_steps=1",
       "--config.data.num_workers=2"],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    _wait_for_training(os.path.join(workdir, "metrics.jsonl"), lambda: proc.poll() is None)
    workers = _children(proc.pid)
    assert len(workers) == 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + _EXIT_LIMIT_S
    while any(os.path.exists(f"/proc/{w}") and _state(w) != "Z" for w in workers):
      assert time.monotonic() < deadline, f"workers alive {_EXIT_LIMIT_S} s after the trainer"
      time.sleep(0.2)
  finally:
    if proc.poll() is None:
      proc.kill()


def _state(pid: int) -> str:
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0]
  except OSError:
    return "Z"


def test_a_checkpoint_that_cannot_be_written_stops_the_run_in_one_line(tmp_path, embedded_dir):
  """The checkpoint's array files (~100 KB for avol:tiny) cannot be written; metrics and
  config (a few KB) can. The failed background save is found at the next log step and named,
  with the newest complete checkpoint, in one line and exit status 1; no traceback."""
  workdir = str(tmp_path / "run")
  # Stands in for a full disk: files may not grow past 40 KB (EFBIG; SIGXFSZ ignored so that
  # the write fails rather than the process). Set by the shell: no fork of this JAX process.
  command = (f"ulimit -f 39 && trap '' XFSZ && exec {shlex.quote(sys.executable)} -m avjax.main "
             f"--experiment=avol:tiny --workdir={shlex.quote(workdir)} --config.train.num_steps=6 "
             "--config.train.checkpoint_every_steps=2 --config.train.log_every_steps=1")
  proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                        timeout=limits.HANG_S,
                        env=dict(os.environ, AVJAX_JAX_CACHE=str(tmp_path / "jax_cache")))
  assert proc.returncode == 1, proc.stderr[-3000:]
  said = [line for line in proc.stderr.splitlines() if line.startswith("avjax:")]
  assert len(said) == 1, proc.stderr[-3000:]
  last = said[0]
  assert last.startswith("avjax: saving checkpoint step 2 in ") and "is the disk full?" in last
  assert "none is complete" in last
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


# Loaded by every Python process the trainer starts (its probe workers too): the probe of a
# file named stall* writes the worker's pid to $AVJAX_TEST_STALL and then never returns.
_STALLING_PROBE = """
import os, time
if os.environ.get("AVJAX_TEST_STALL"):
  from data_pipeline import media_check
  _probe = media_check._probe

  def stalling_probe(path, audio_path, timeout_s):
    if os.path.basename(path).startswith("stall"):
      with open(os.environ["AVJAX_TEST_STALL"] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
      os.replace(os.environ["AVJAX_TEST_STALL"] + ".tmp", os.environ["AVJAX_TEST_STALL"])
      time.sleep(3600)
    return _probe(path, audio_path, timeout_s)

  media_check._probe = stalling_probe
"""


def test_sigterm_during_the_first_probe_keeps_the_verdicts_and_exits_143(tmp_path):
  """A scheduler's SIGTERM while a new dataset is being probed: one line, status 143, the
  verdicts reached are in the probe cache (the next run probes only the rest), and no probe
  worker is left behind."""
  root = tmp_path / "videos"
  for name in ("a.mp4", "b.mp4", "c.mp4", "stall.mp4"):  # probed in this order
    mf.write_video(str(root / name), seconds=1.5)
  site = tmp_path / "site"
  site.mkdir()
  (site / "sitecustomize.py").write_text(_STALLING_PROBE)
  marker, log = str(tmp_path / "stalled_worker"), str(tmp_path / "trainer.log")
  env = dict(os.environ, AVJAX_TEST_STALL=marker,
             PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
  with open(log, "w") as f:
    trainer = subprocess.Popen(
        [sys.executable, "-m", "avjax.main", "--experiment=avol:tiny",
         f"--workdir={tmp_path / 'run'}", f"--config.data.root={root}",
         f"--config.data.cache_dir={tmp_path / 'cache'}",
         "--config.data.per_file_timeout_s=3000", "--config.data.probe_workers=1"], stdout=f, stderr=subprocess.STDOUT, env=env)
  try:
    deadline = time.monotonic() + _START_LIMIT_S
    # One worker: the fourth file is handed out once the trainer has the first three verdicts.
    while not os.path.exists(marker):
      assert trainer.poll() is None, open(log, errors="replace").read()[-2500:]
      assert time.monotonic() < deadline, "the probe did not reach the stalling file"
      time.sleep(0.2)
    trainer.send_signal(signal.SIGTERM)
    trainer.wait(timeout=_EXIT_LIMIT_S)
  finally:
    if trainer.poll() is None:
      trainer.kill()
  text = open(log, errors="replace").read()
  assert trainer.returncode == 143, text[-2500:]
  assert "Traceback" not in text
  assert text.splitlines()[-1] == (
      "avjax: stopped at once by signal 15; files are written whole or not at all "
      "(checkpoints, caches, configs, metrics): run the same command to go on")
  verdicts = media_check.load_cache(str(tmp_path / "cache" / "probe_cache.json"))
  assert len(verdicts) == 3 and all(v["ok"] for v in verdicts.values())
  stalled = int(open(marker).read())
  deadline = time.monotonic() + _EXIT_LIMIT_S
  while os.path.exists(f"/proc/{stalled}") and _state(stalled) != "Z":
    assert time.monotonic() < deadline, f"probe worker {stalled} outlived the trainer"
    time.sleep(0.2)
