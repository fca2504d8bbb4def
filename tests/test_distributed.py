"""Multi-host training on localhost: two `jax.distributed` processes (CPU devices, Gloo
collectives) run the entry point's main() with --distributed for 2 steps of avol:tiny, the code
path of a cluster job. Both must end with the same parameters, each must have fed its own
share of the global batch, and together they must compute what one process computes on the
same global batch."""

import json
import signal
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np

import limits
from avjax import config as config_lib
from avjax.train import checkpoint as checkpoint_lib
from avjax.train import loop
from avjax.train import resume
from data_pipeline import pipeline

OVERRIDES = ("train.num_steps=2", "train.checkpoint_every_steps=2", "data.max_clips=16",
             "eval.every_steps=0")
PROCESSES = 2

# One process of the job: avjax.main's main() as `python -m avjax.main` runs it, with two
# wrappers that record what this process saw (the run itself has no test hooks): the local
# rows it fed to each step, and its own copy of the replicated state when the loop saves.
_WORKER = """
import sys
import jax
import numpy as np
from absl import app
from avjax import main
from avjax.train import checkpoint, loop

out, argv = sys.argv[1], sys.argv[2:]
batches = []
to_device, save = loop.to_device, checkpoint.Checkpointer.save

def recording_to_device(batch, sharding, keys=loop.TRAIN_KEYS):
  batches.append({k: np.asarray(batch[k]) for k in keys if k in batch})
  return to_device(batch, sharding, keys)

def recording_save(self, step, state, data_iterator):
  tree = {"params": state.params, "batch_stats": state.batch_stats}
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  local = {"state" + jax.tree_util.keystr(p): np.asarray(x.addressable_data(0)) for p, x in flat}
  rows = {f"batch{i}/{k}": v for i, b in enumerate(batches) for k, v in b.items()}
  np.savez(out, step=step, process_index=jax.process_index(),
           process_count=jax.process_count(), **local, **rows)
  save(self, step, state, data_iterator)

loop.to_device = recording_to_device
checkpoint.Checkpointer.save = recording_save
app.run(main.main, argv=["avjax.main", *argv], flags_parser=main.parse_flags)
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _run_job(tmp_path, workdir: str, timeout_s: float = 1500) -> list[dict]:
  """Starts the processes, waits for all (stopping the rest once one fails); their records.

  timeout_s only guards against a hang (processes stuck in a collective): a busy machine can
  take several times as long as an idle one (300 s was too little on a loaded 2-core machine).
  """
  port = _free_port()
  procs, logs, outs = [], [], []
  for i in range(PROCESSES):
    out, log = str(tmp_path / f"process{i}.npz"), str(tmp_path / f"process{i}.log")
    args = ["--experiment=avol:tiny", f"--workdir={workdir}", "--distributed",
            f"--coordinator_address=localhost:{port}", f"--num_processes={PROCESSES}",
            f"--process_id={i}", *(f"--config.{o}" for o in OVERRIDES)]
    with open(log, "w") as f:
      procs.append(subprocess.Popen([sys.executable, "-c", _WORKER, out, *args],
                                    stdout=f, stderr=subprocess.STDOUT))
    logs.append(log)
    outs.append(out)
  deadline = time.monotonic() + timeout_s
  timed_out = False
  try:
    while any(p.poll() is None for p in procs):
      # A process that failed leaves the others waiting on it in a collective: stop them.
      timed_out = time.monotonic() > deadline
      if any(p.returncode not in (None, 0) for p in procs) or timed_out:
        break
      time.sleep(0.5)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
      p.wait()
  report = [f"timed out after {timeout_s} s"] if timed_out else []
  for i, (p, log) in enumerate(zip(procs, logs)):
    with open(log, errors="replace") as f:
      report.append(f"--- process {i} (exit {p.returncode}):\n{f.read()[-2500:]}")
  assert all(p.returncode == 0 for p in procs), "\n".join(report)
  return [dict(np.load(out)) for out in outs]


def _state_arrays(record: dict) -> dict:
  return {k: v for k, v in record.items() if k.startswith("state")}


def _flat_state(state) -> dict:
  flat, _ = jax.tree_util.tree_flatten_with_path(
      {"params": state.params, "batch_stats": state.batch_stats})
  return {"state" + jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


def test_two_processes_train_like_one(tmp_path, embedded_dir):
  workdir = str(tmp_path / "job")
  records = _run_job(tmp_path, workdir)
  config = config_lib.get_config("avol:tiny", list(OVERRIDES))
  batch_keys = sorted({k.split("/")[1] for k in records[0] if k.startswith("batch")})
  for i, r in enumerate(records):
    assert (int(r["process_index"]), int(r["process_count"]), int(r["step"])) == (i, PROCESSES, 2)

  s = loop.setup(config)  # one process, one device: the reference
  initial = _flat_state(s.state)

  # Each process fed its own half of each global batch: pipeline shard i, nothing else.
  clips, batch_size = s.dataset.split("train"), config.train.batch_size
  for i, r in enumerate(records):
    shard = iter(pipeline.train_dataset(
        config.data, clips, global_batch_size=batch_size, seed=config.seed, process_index=i,
        process_count=PROCESSES, positives_only=config.train.negatives == "batch"))
    for step in range(2):
      expected = next(shard)
      assert len(r[f"batch{step}/image"]) == batch_size // PROCESSES
      for k in batch_keys:
        np.testing.assert_array_equal(r[f"batch{step}/{k}"], expected[k], err_msg=(i, step, k))
  for step in range(2):
    assert not np.array_equal(records[0][f"batch{step}/image"], records[1][f"batch{step}/image"])

  # Both processes hold bit-identical parameters and BatchNorm statistics.
  ours, theirs = _state_arrays(records[0]), _state_arrays(records[1])
  assert ours.keys() == theirs.keys() and ours
  for key in ours:
    np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)

  # The checkpoint both wrote (each its own iterator state) restores, here on one device, to
  # exactly those values; only process 0 logged.
  ckpt = checkpoint_lib.Checkpointer(workdir)
  assert ckpt.latest_step() == 2
  restored = _flat_state(ckpt.restore(2, s.state))
  ckpt.close()
  for key in ours:
    np.testing.assert_array_equal(restored[key], ours[key], err_msg=key)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints", "2", "data"))) == [
      "commit_success.txt", "process_0-of-2.json", "process_1-of-2.json"]
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert [json.loads(line)["step"] for line in f] == [1, 2]

  # One process on the same global batches (process 0's rows, then process 1's) computes the
  # same state: the gradient and BatchNorm statistics span both hosts.
  state = s.state
  for step in range(2):
    batch = {k: np.concatenate([r[f"batch{step}/{k}"] for r in records]) for k in batch_keys}
    state, _ = s.train_step(state, loop.to_device(batch, s.batch_sharding))
  single = _flat_state(state)
  moved = 0
  for key in ours:
    np.testing.assert_allclose(ours[key], single[key], rtol=1e-4, atol=1e-5, err_msg=key)
    moved += not np.allclose(initial[key], ours[key], rtol=1e-4, atol=1e-5)
  assert moved > len(ours) // 2, f"only {moved} of {len(ours)} arrays changed in 2 steps"


def _start_processes(tmp_path, workdir: str, args_of) -> tuple[list, list[str]]:
  """`python -m avjax.main` as each process of a localhost job of avol:tiny; args_of(i): the
  further arguments of process i. The processes and their log files."""
  port = _free_port()
  procs, logs = [], []
  for i in range(PROCESSES):
    logs.append(str(tmp_path / f"process{i}.log"))
    with open(logs[-1], "w") as f:
      procs.append(subprocess.Popen(
          [sys.executable, "-m", "avjax.main", "--experiment=avol:tiny", f"--workdir={workdir}",
           "--distributed", f"--coordinator_address=localhost:{port}",
           f"--num_processes={PROCESSES}", f"--process_id={i}", *args_of(i)],
          stdout=f, stderr=subprocess.STDOUT))
  return procs, logs


def _read_logs(logs: list[str]) -> list[str]:
  text = []
  for log in logs:
    with open(log, errors="replace") as f:
      text.append(f.read())
  return text


def test_sigterm_to_one_process_stops_the_job_at_one_step(tmp_path, embedded_dir):
  """Preemption of one host: the stop is agreed before anyone saves, so both processes save
  the same step and exit 143 (a process that saved alone would leave the other waiting in the
  step's collectives forever)."""
  workdir = str(tmp_path / "job")
  procs, logs = _start_processes(tmp_path, workdir, lambda i: [
      "--config.data.max_clips=16", "--config.eval.every_steps=0",
      "--config.train.num_steps=100000", "--config.train.log_every_steps=1",
      "--config.train.checkpoint_every_steps=100000"])
  metrics = os.path.join(workdir, "metrics.jsonl")
  deadline = time.monotonic() + limits.HANG_S
  try:
    while not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
      assert all(p.poll() is None for p in procs), "a process ended before training"
      assert time.monotonic() < deadline, "training did not start"
      time.sleep(0.5)
    procs[1].send_signal(signal.SIGTERM)  # one host only
    for p in procs:
      p.wait(timeout=max(60.0, deadline - time.monotonic()))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  text = _read_logs(logs)
  assert [p.returncode for p in procs] == [143, 143], "\n---\n".join(t[-2500:] for t in text)
  ckpt = checkpoint_lib.Checkpointer(workdir)
  step = ckpt.latest_step()
  ckpt.close()
  assert step is not None and step >= 1
  assert f"stopped at step {step} of 100000 (another process was stopped)" in text[0]
  assert f"stopped at step {step} of 100000 (signal 15)" in text[1]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints", str(step), "data"))) == [
      "commit_success.txt", "process_0-of-2.json", "process_1-of-2.json"]


def test_hosts_that_index_other_clips_stop_before_training_in_one_line(tmp_path, embedded_dir):
  """Each host indexes the files itself; one that holds other clips (a file it cannot read, a
  different copy of the data) would shift every shard. Both processes stop before the first
  step with one line naming the process that differs."""
  workdir = str(tmp_path / "job")
  procs, logs = _start_processes(tmp_path, workdir, lambda i: [
      f"--config.data.max_clips={16 - 2 * i}", "--config.eval.every_steps=0",
      "--config.train.num_steps=2"])
  try:
    for p in procs:
      p.wait(timeout=limits.HANG_S)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  text = _read_logs(logs)
  assert [p.returncode for p in procs] == [1, 1], "\n---\n".join(t[-2500:] for t in text)
  for t in text:
    errors = [line for line in t.splitlines() if line.startswith("avjax: ")]
    assert errors == ["avjax: processes [1] indexed other training clips than process 0: their "
                      "data folders or probe results differ (see each host's skipped-files "
                      "list)"], t[-2500:]
    assert "Traceback" not in t
  assert not os.path.exists(os.path.join(workdir, "metrics.jsonl"))
  assert not resume.has_checkpoints(workdir)
