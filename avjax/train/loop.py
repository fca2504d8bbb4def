"""train_and_evaluate and evaluate_checkpoint: the trainer, read top to bottom in phases.

Data flows one way: clip table -> Grain iterator -> device batches -> train step ->
metrics.jsonl / TensorBoard / Orbax checkpoints (state + iterator in one step).
"""

import dataclasses
import json
import os
import time
from typing import Callable, Optional

import jax
import ml_collections
import numpy as np
import tqdm
from jax.experimental import multihost_utils

from avjax import evaluate
from avjax.config import ConfigError
from avjax.models import build_model, nets
from avjax.train import checkpoint as checkpoint_lib
from avjax.train import state as state_lib
from avjax.train import step as step_lib
from avjax.train.metric_writer import MetricWriter
from avjax.visualise import eval_pictures
from data_pipeline import index, pipeline

TRAIN_KEYS = ("image", "audio", "label", "frame", "replaced")


class TrainingDiverged(RuntimeError):
  """The loss became NaN or inf; the last good checkpoint is kept."""


@dataclasses.dataclass
class Setup:
  """What both training and evaluation need: mesh, data, model and the jitted steps."""
  mesh: jax.sharding.Mesh
  dataset: index.Dataset
  global_batch_size: int
  model: object
  state: state_lib.TrainState
  train_step: Callable
  infer: Callable
  batch_sharding: jax.sharding.NamedSharding


def global_batch_size(train_cfg: ml_collections.ConfigDict) -> int:
  """The global batch: per_device_batch_size x devices when set, else batch_size."""
  if train_cfg.per_device_batch_size > 0:
    return train_cfg.per_device_batch_size * jax.device_count()
  if train_cfg.batch_size % jax.device_count():
    raise ConfigError(f"train.batch_size={train_cfg.batch_size} is not a multiple of the "
                      f"{jax.device_count()} devices")
  return train_cfg.batch_size


def setup(config: ml_collections.ConfigDict) -> Setup:
  if config.train.negatives not in step_lib.NEGATIVES:
    raise ConfigError(f"train.negatives={config.train.negatives!r}; use one of "
                      + ", ".join(step_lib.NEGATIVES))
  if config.model.dtype not in nets.DTYPES:
    raise ConfigError(f"model.dtype={config.model.dtype!r}; use one of " + ", ".join(nets.DTYPES))
  # Mesh: one "data" axis over every device of every process.
  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

  # Data: the clip table (the embedded dataset unless data.root is set).
  dataset = index.load_dataset(config.data)

  # Model, optimiser, state; the steps jitted with their shardings.
  model = build_model(config.model)
  tx = state_lib.make_optimizer(config.train)
  state = state_lib.create_train_state(model, tx, config, mesh)
  state_sharding = jax.tree.map(lambda _: replicated, state)
  train_step, infer = step_lib.jit_steps(
      model, tx, state_lib.learning_rate_schedule(config.train), state_sharding, batch_sharding,
      negatives=config.train.negatives)
  return Setup(mesh, dataset, global_batch_size(config.train), model, state, train_step, infer,
               batch_sharding)


def to_device(batch: dict, sharding: jax.sharding.NamedSharding, keys=TRAIN_KEYS) -> dict:
  """Per-process numpy rows -> one global array per key, sharded over the data axis."""
  return {k: jax.make_array_from_process_local_data(sharding, batch[k]) for k in keys if k in batch}


def make_predict_fn(s: Setup, state: state_lib.TrainState) -> Callable[[dict], dict]:
  """predict_fn(batch) -> numpy outputs, for evaluators. Every process sees the whole batch."""
  n_proc, proc = jax.process_count(), jax.process_index()

  def predict_fn(batch: dict) -> dict:
    rows = len(batch["image"])
    if rows % jax.device_count():
      raise ConfigError(f"eval.batch_size={rows} is not a multiple of the "
                        f"{jax.device_count()} devices")
    local = {k: batch[k][proc * rows // n_proc:(proc + 1) * rows // n_proc]
             for k in ("image", "audio")}
    device = to_device(local, s.batch_sharding, keys=("image", "audio"))
    out = s.infer(state, device["image"], device["audio"])
    if n_proc > 1:
      return jax.tree.map(np.asarray, multihost_utils.process_allgather(out, tiled=True))
    return jax.tree.map(np.asarray, jax.device_get(out))

  return predict_fn


def build_split_evaluators(config: ml_collections.ConfigDict, dataset: index.Dataset,
                           split: str) -> list:
  """The config's evaluators on one split of the dataset (fixed, seeded eval batches)."""
  clips = dataset.split(split)
  if not clips:
    raise ConfigError(f"the dataset has no '{split}' clips to evaluate on")

  def make_batches(mode: str, **batch_options):
    return pipeline.eval_batches(config.data, clips, batch_size=config.eval.batch_size,
                                 seed=config.eval.seed, mode=mode, **batch_options)

  return evaluate.build_evaluators(config.eval, make_batches, clips, dataset.classes,
                                   ontology=dataset.ontology)


def _fetch_mean(pending: list[dict]) -> dict:
  """One host sync for the metrics of several steps: their mean (sum for counts)."""
  host = jax.device_get(pending)
  mean = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
  mean["replaced"] = float(np.sum([m["replaced"] for m in host]))
  return mean


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains config.experiment in workdir, resuming from its latest checkpoint; returns the
  last logged metrics."""
  s = setup(config)
  train_cfg = config.train
  writer = MetricWriter(workdir)
  is_main = jax.process_index() == 0
  if is_main:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json(indent=2))

  # Input pipeline: this process's share of each global batch.
  train_clips = s.dataset.split("train")
  if not train_clips:
    raise ConfigError("the dataset has no 'train' clips")
  data_iter = iter(pipeline.train_dataset(
      config.data, train_clips, global_batch_size=s.global_batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      positives_only=train_cfg.negatives == "batch"))

  try:
    # Checkpoint restore: state and iterator together, or a fresh start.
    ckpt = checkpoint_lib.Checkpointer(workdir, keep=train_cfg.keep_checkpoints)
    state = s.state
    start_step = ckpt.latest_step() or 0
    if start_step:
      state = ckpt.restore(start_step, state, data_iter)
      if is_main:
        print(f"Resumed from step {start_step} in {ckpt.directory}")

    # Evaluators on the validation split, run every eval.every_steps.
    evaluators = build_split_evaluators(config, s.dataset, "val") if config.eval.every_steps else []

    # The loop: one step per batch; metrics fetched only at log and checkpoint steps.
    last_logged, pending = {}, []
    bar = tqdm.tqdm(total=train_cfg.num_steps, initial=start_step, disable=not is_main,
                    desc=config.experiment, unit="step", dynamic_ncols=True)
    interval_start, interval_steps, interval_wait = time.perf_counter(), 0, 0.0
    with checkpoint_lib.StopRequest() as stop:
      step = start_step
      while step < train_cfg.num_steps and not stop.requested:
        # Steps run asynchronously, so the host blocks here only when the input pipeline is
        # behind the device: this time, over the interval, is the share the device waits.
        wait_start = time.perf_counter()
        host_batch = next(data_iter)
        interval_wait += time.perf_counter() - wait_start
        batch = to_device(host_batch, s.batch_sharding)
        state, metrics = s.train_step(state, batch)
        pending.append(metrics)
        step += 1
        interval_steps += 1
        bar.update(1)
        save_now = step % train_cfg.checkpoint_every_steps == 0 or step == train_cfg.num_steps
        if step % train_cfg.log_every_steps == 0 or save_now or stop.requested:
          last_logged = _fetch_mean(pending)
          pending = []
          elapsed = time.perf_counter() - interval_start
          last_logged["clips_per_s"] = interval_steps * s.global_batch_size / elapsed
          last_logged["data_wait_fraction"] = interval_wait / elapsed
          interval_start, interval_steps, interval_wait = time.perf_counter(), 0, 0.0
          # A finite loss can hide parameters that already went inf: check both.
          bad = [k for k in ("loss", "param_norm") if not np.isfinite(last_logged[k])]
          if bad:
            ckpt.close()
            raise TrainingDiverged(
                f"{bad[0]} became {last_logged[bad[0]]} by step {step}; stopped without saving. "
                f"The last good checkpoint is step {ckpt.latest_step()} in {ckpt.directory}")
          writer.write(step, last_logged)
          bar.set_postfix(loss=f"{last_logged['loss']:.3f}", acc=f"{last_logged['accuracy']:.2f}",
                          clips_s=f"{last_logged['clips_per_s']:.1f}")
        if save_now or stop.requested:
          ckpt.save(step, state, data_iter)
        if evaluators and step % config.eval.every_steps == 0:
          results = evaluate.run_evaluators(evaluators, make_predict_fn(s, state))
          writer.write(step, {f"val/{k}": v for k, v in results.items()})
    bar.close()
    ckpt.close()
    writer.close()
    if stop.requested and is_main:
      print(f"Stopped at step {step}; checkpoint saved in {ckpt.directory}")
  finally:
    # Grain's worker processes must be stopped, or the interpreter waits for them at exit.
    data_iter.close()
  return last_logged


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        checkpoint_step: Optional[int] = None, split: str = "test") -> dict:
  """Scores a checkpoint of workdir on `split`; writes workdir/eval/metrics.json; returns it."""
  s = setup(config)
  ckpt = checkpoint_lib.Checkpointer(workdir)
  step = checkpoint_step if checkpoint_step is not None else ckpt.latest_step()
  if step is None:
    raise ConfigError(f"no checkpoint in {ckpt.directory}: train first (--mode=train)")
  if step not in ckpt.manager.all_steps():
    raise ConfigError(f"no checkpoint at step {step} in {ckpt.directory}; "
                      f"steps: {list(ckpt.manager.all_steps())}")
  state = ckpt.restore(step, s.state)
  ckpt.close()
  evaluators = build_split_evaluators(config, s.dataset, split)
  predict_fn = make_predict_fn(s, state)
  results = evaluate.run_evaluators(evaluators, predict_fn)
  results = {"step": int(step), "split": split, **results}
  out_dir = os.path.join(workdir, "eval")
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
      json.dump(results, f, indent=2, default=float)
    print(evaluate.format_table(results))
    print(f"Metrics written to {os.path.join(out_dir, 'metrics.json')}")
  if config.eval.pictures:
    report = eval_pictures.write_eval_pictures(config, s.dataset.split(split),
                                               s.dataset.classes, predict_fn, workdir, results)
    if report:
      print(f"Report (metrics, heat maps, retrieval, video): {report}")
  return results
