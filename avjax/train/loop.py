"""train_and_evaluate: the one trainer for all three nets, read top to bottom.

Data flows one way: clip table -> Grain iterator -> device batches -> train step ->
metrics.jsonl / TensorBoard / Orbax checkpoints (state + iterator in one step), with the
validation evaluators run every eval.every_steps. The pieces (interval timing, the divergence
check, the schedules) are named below; the loop itself only strings them together.
"""

import os
import shutil
import signal
import sys
import tempfile
import time
from typing import Sequence

import jax
import ml_collections
import numpy as np
import tqdm
from jax._src import distributed  # the coordination client: its barrier has a time limit
from jax.experimental import multihost_utils

from avjax import evaluate
from avjax.errors import ConfigError
from avjax.train import checkpoint as checkpoint_lib
from avjax.train import input_guard
from avjax.train import resume
from avjax.train.evaluation import split_evaluators
from avjax.train.metric_writer import MetricWriter
from avjax.train.setup import (TRAIN_KEYS, check_settings, check_workdir,  # noqa: F401
                               make_predict_fn, setup, to_device)
from data_pipeline import decoding_marks, media, pipeline
from data_pipeline.clips import DataError


class TrainingDiverged(RuntimeError):
  """The loss became NaN or inf; the last good checkpoint is kept."""


class TrainingStopped(Exception):
  """SIGTERM or Ctrl-C stopped training after a checkpoint of the step reached was saved;
  the same command resumes. `exit_code` is 128 + the signal (143 for SIGTERM, 130 for
  Ctrl-C), the shells' convention for "ended by a signal", so a scheduler does not take the
  run for finished."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.exit_code = 128 + signum


class IntervalTimer:
  """Throughput and input-pipeline wait over each logging interval.

  Steps run asynchronously, so the host blocks in `next(data)` only when the input pipeline
  is behind the device: that time, over the interval, is the share the device waited.
  """

  def __init__(self, global_batch_size: int):
    self.global_batch_size = global_batch_size
    self._reset()

  def _reset(self):
    self.start, self.steps, self.wait = time.perf_counter(), 0, 0.0

  def next_batch(self, data_iter):
    """next(data_iter), with the time blocked counted as data wait."""
    wait_start = time.perf_counter()
    batch = next(data_iter)
    self.wait += time.perf_counter() - wait_start
    self.steps += 1
    return batch

  def read_and_reset(self) -> dict:
    """{"clips_per_s", "data_wait_fraction"} of the interval just ended."""
    elapsed = time.perf_counter() - self.start
    out = {"clips_per_s": self.steps * self.global_batch_size / elapsed,
           "data_wait_fraction": self.wait / elapsed}
    self._reset()
    return out


def fetch_mean(pending: list[dict]) -> dict:
  """One host sync for the metrics of several steps: their mean (sum for counts)."""
  host = jax.device_get(pending)
  mean = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
  mean["replaced"] = float(np.sum([m["replaced"] for m in host]))
  return mean


def check_finite(logged: dict, step: int, ckpt: checkpoint_lib.Checkpointer) -> None:
  """Raises TrainingDiverged when the loss or the parameters are no longer finite (a finite
  loss can hide parameters that already went inf: both are checked)."""
  bad = [k for k in ("loss", "param_norm") if not np.isfinite(logged[k])]
  if bad:
    ckpt.close()
    raise TrainingDiverged(
        f"{bad[0]} became {logged[bad[0]]} by step {step}; stopped without saving. "
        f"The last good checkpoint is step {ckpt.latest_step()} in {ckpt.directory}")


REPLACED_LOG = "replaced_clips.tsv"
START_BARRIER_S = 3600  # how long the processes of a job wait for each other before training


def count_lines(path: str) -> int:
  with open(path, "rb") as f:
    return sum(1 for _ in f)


def save_after_failure(ckpt, step, state, data_iter, saved_step) -> int:
  """Saves the step reached; the step saved before when the iterator cannot be saved."""
  try:
    ckpt.save(step, state, data_iter)
    ckpt.wait()
    return step
  except Exception as err:  # pylint: disable=broad-except  # e.g. a pipeline with a dead worker
    print(f"avjax: could not save step {step} ({type(err).__name__}: "
          f"{media.failure_reason(err)}); keeping step {saved_step}", file=sys.stderr)
    return saved_step


def agree(flag: bool) -> bool:
  """True on every process when it is true on any (the same answer everywhere)."""
  if jax.process_count() == 1:
    return flag
  return bool(np.max(multihost_utils.process_allgather(np.int32(flag))))


def check_same_clips_everywhere(fingerprint: str) -> None:
  """DataError (one line) unless every process indexed the same training clips (each probes
  the files itself; a file that one host cannot read would shift every shard)."""
  if jax.process_count() == 1:
    return
  # The first collective starts Gloo, whose set-up waits 30 s at most for the other
  # processes; a barrier with a generous limit first, so that a host that indexed or
  # compiled more slowly (a busy machine) is waited for.
  distributed.global_state.client.wait_at_barrier("avjax_train_start",
                                                  timeout_in_ms=START_BARRIER_S * 1000)
  mine = np.array([int(fingerprint[i:i + 4], 16) for i in range(0, 16, 4)], np.int32)
  every = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, mine.size)
  differ = [i for i, row in enumerate(every) if not np.array_equal(row, every[0])]
  if differ:
    raise DataError(f"processes {differ} indexed other training clips than process 0: their "
                    "data folders or probe results differ (see each host's skipped-files list)")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_resume_change: Sequence[str] = ()) -> dict:
  """Trains config.experiment in workdir, resuming from its newest readable checkpoint;
  returns the last logged metrics; raises TrainingStopped after saving when SIGTERM or
  Ctrl-C stopped it.

  allow_resume_change: fields (see resume.py) a resume may change all the same.
  """
  check_workdir(workdir)
  check_settings(config)
  identity = resume.config_identity(config)
  resume.check(workdir, identity, allow_resume_change)  # one line, before any work
  s = setup(config)
  train_clips = s.dataset.split("train")
  if not train_clips:
    raise ConfigError("the dataset has no 'train' clips")
  identity.update(global_batch_size=s.global_batch_size, process_count=jax.process_count(),
                  train_clips=resume.clips_fingerprint(train_clips))
  check_same_clips_everywhere(identity["train_clips"])
  resume.check(workdir, identity, allow_resume_change)
  train_cfg = config.train
  is_main = jax.process_index() == 0

  # Input pipeline: this process's share of each global batch.
  os.makedirs(workdir, exist_ok=True)
  replaced_log = os.path.join(workdir, REPLACED_LOG if jax.process_count() == 1 else
                              f"{REPLACED_LOG}.process_{jax.process_index()}")
  # Where the workers mark what they decode (local and removed at the end: two writes a clip).
  marks = tempfile.mkdtemp(prefix="avjax-decoding-")
  try:
    data_iter = iter(pipeline.train_dataset(
        config.data, train_clips, global_batch_size=s.global_batch_size, seed=config.seed,
        process_index=jax.process_index(), process_count=jax.process_count(),
        positives_only=train_cfg.negatives == "batch", failure_log=replaced_log,
        decoding_marks=marks))
  except BaseException:
    shutil.rmtree(marks, ignore_errors=True)
    raise

  input_failure = batches = bar = step = None
  try:
    # Checkpoint restore: state and iterator together, or a fresh start.
    ckpt = checkpoint_lib.Checkpointer(workdir, keep=train_cfg.keep_checkpoints)
    start_step, state = ckpt.restore_good(s.state, data_iter, set_aside=True)
    start_step = start_step or 0
    if is_main:
      resume.record(config, workdir, identity, start_step)
      if start_step:
        print(f"Resumed from step {start_step} in {ckpt.directory}")
    # Clips replaced past the restored step are trained (and logged) again: dropped. The
    # workers start at the first batch, so none of this run's lines is written yet.
    rows_per_step = s.global_batch_size // jax.process_count()
    pipeline.trim_failure_log(replaced_log, start_step * rows_per_step)
    # Rows past the restored step were logged by a run that did not save them: dropped.
    writer = MetricWriter(workdir, resume_step=start_step)

    # Evaluators on the validation split, run every eval.every_steps.
    evaluators = split_evaluators(config, s.dataset, "val") if config.eval.every_steps else []

    def is_log_step(step):
      return step % train_cfg.log_every_steps == 0

    def is_save_step(step):
      return step % train_cfg.checkpoint_every_steps == 0 or step == train_cfg.num_steps

    def is_eval_step(step):
      return bool(evaluators) and step % config.eval.every_steps == 0

    def log(step, pending):
      """One host sync for the pending steps' metrics: checked, written, shown."""
      logged = {**fetch_mean(pending), **timer.read_and_reset()}
      check_finite(logged, step, ckpt)
      ckpt.check()  # a background save that failed (full disk) stops the run here, in one line
      writer.write(step, logged)
      bar.set_postfix(loss=f"{logged['loss']:.3f}", acc=f"{logged['accuracy']:.2f}",
                      clips_s=f"{logged['clips_per_s']:.1f}")
      return logged

    # The loop: one step per batch; metrics fetched only at log and checkpoint steps.
    last_logged, pending, saved_step = {}, [], start_step
    timer = IntervalTimer(s.global_batch_size)
    bar = tqdm.tqdm(total=train_cfg.num_steps, initial=start_step, disable=not is_main,
                    desc=config.experiment, unit="step", dynamic_ncols=True)
    batches = input_guard.GuardedBatches(data_iter)  # a dead worker is an error, not a hang
    with checkpoint_lib.StopRequest() as stop:
      step, stopping, failed = start_step, False, False
      while step < train_cfg.num_steps:
        # All processes stop at the same step: one that saved while another entered the
        # step's collectives would wait forever (with one process these are plain flags).
        stopping = agree(stop.requested)
        if stopping:
          break
        try:
          host_batch = timer.next_batch(batches)
        except Exception as err:  # pylint: disable=broad-except  # a dead worker, 8 bad files
          input_failure = err
          files = (decoding_marks.files_of(marks, err.pid)
                   if isinstance(err, input_guard.WorkerDied) else "")
          if files:
            input_failure = input_guard.WorkerDied(f"{err} while decoding {files}", err.pid)
        failed = agree(input_failure is not None)
        if failed:
          break
        batch = to_device(host_batch, s.batch_sharding)
        state, metrics = s.train_step(state, batch)
        # The rows live in the workers' shared memory until nothing refers to them.
        host_batch = batch = None
        pending.append(metrics)
        step += 1
        bar.update(1)
        if is_log_step(step) or is_save_step(step):
          last_logged = log(step, pending)
          pending = []
        if is_save_step(step):
          ckpt.save(step, state, data_iter)
          saved_step = step
        if is_eval_step(step):
          results = evaluate.run_evaluators(evaluators, make_predict_fn(s, state))
          writer.write(step, {f"val/{k}": v for k, v in results.items()})
      # A stop (during a step, a validation run or a save) or a failed input pipeline: the step
      # reached is saved. Not after a failure on several processes: their iterators differ by
      # the batch the failed one never gave, so the last regular checkpoint is the one to keep.
      if (stopping or (failed and jax.process_count() == 1)) and saved_step != step:
        if pending:
          last_logged = log(step, pending)
        saved_step = save_after_failure(ckpt, step, state, data_iter, saved_step)
    bar.close()
    ckpt.close()
    writer.close()
  finally:
    if bar is not None:
      bar.close()  # an error below the bar starts on a line of its own
    # Grain's worker processes must be stopped, or the interpreter waits for them at exit.
    if input_failure is None:
      data_iter.close()
    else:
      input_guard.abandon(data_iter)
    shutil.rmtree(marks, ignore_errors=True)
    if step is not None:  # the workers are stopped: keep the batches trained (and the failed one)
      pipeline.trim_failure_log(replaced_log, (step + (input_failure is not None)) * rows_per_step)
  if failed:
    if input_failure is None:
      input_failure = RuntimeError("the input pipeline of another process failed")
    listed = f"; replaced clips are listed in {replaced_log}" if os.path.exists(replaced_log) \
        else ""
    # Our own errors (a dead worker, a stalled decode, 8 bad clips) name whole paths: their
    # first line is kept whole; other reasons are cut to one short line.
    reason = (str(input_failure).splitlines()[0]
              if isinstance(input_failure, (input_guard.WorkerDied, DataError))
              else media.failure_reason(input_failure))
    raise DataError(f"the input pipeline failed at step {step} of {train_cfg.num_steps} "
                    f"({type(input_failure).__name__}: {reason}); "
                    + (f"checkpoint of step {saved_step} in {ckpt.directory}: run the same "
                       "command to resume" if saved_step else "no checkpoint was saved")
                    + listed)
  if is_main and os.path.exists(replaced_log):
    print(f"{count_lines(replaced_log)} clips could not be decoded and were replaced; "
          f"list in {replaced_log}")
  if stopping:
    cause = f"signal {stop.signum}" if stop.signum else "another process was stopped"
    raise TrainingStopped(f"stopped at step {step} of {train_cfg.num_steps} ({cause}); "
                          f"checkpoint saved in {ckpt.directory}: run the same command to "
                          "resume", stop.signum or signal.SIGTERM)
  return last_logged
