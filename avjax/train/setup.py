"""What training and evaluation both need: the mesh, the clip table, the model, the jitted steps.

    s = setup(config)                      # mesh, dataset, model, fresh state, train_step, infer
    batch = to_device(host_batch, s.batch_sharding)
    predict_fn = make_predict_fn(s, state) # numpy in, numpy out: what the evaluators call
"""

import dataclasses
import os
from typing import Callable

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from avjax import runtime
from avjax.errors import ConfigError
from avjax.models import build_model, nets
from avjax.train import state as state_lib
from avjax.train import step as step_lib
from data_pipeline import index

TRAIN_KEYS = ("image", "audio", "label", "frame", "replaced")


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


# Settings that count something: (section, key, smallest allowed value).
_AT_LEAST = (("train", "num_steps", 0), ("train", "per_device_batch_size", 0),
             ("train", "log_every_steps", 1), ("train", "checkpoint_every_steps", 1),
             ("train", "keep_checkpoints", 1), ("train", "warmup_steps", 0),
             ("train", "decay_every_steps", 1), ("eval", "every_steps", 0),
             ("eval", "batch_size", 1), ("data", "num_workers", 0),
             ("data", "probe_workers", 0), ("data", "threads_per_worker", 1),
             ("data", "worker_buffer_batches", 1))


def check_settings(config: ml_collections.ConfigDict) -> None:
  """Every out-of-range setting is one ConfigError line, before any work starts."""
  for section, key, least in _AT_LEAST:
    value = config[section][key]
    if value < least:
      raise ConfigError(f"{section}.{key}={value}; it must be at least {least}")
  if config.train.per_device_batch_size == 0 and config.train.batch_size < 1:
    raise ConfigError(f"train.batch_size={config.train.batch_size}; it must be at least 1 "
                      "(or set train.per_device_batch_size)")
  if config.eval.batch_size % jax.device_count():
    raise ConfigError(f"eval.batch_size={config.eval.batch_size} is not a multiple of the "
                      f"{jax.device_count()} devices")
  global_batch_size(config.train)
  if config.train.negatives not in step_lib.NEGATIVES:
    raise ConfigError(f"train.negatives={config.train.negatives!r}; use one of "
                      + ", ".join(step_lib.NEGATIVES))
  if config.data.shortcut_control and not config.data.frame_grid:
    raise ConfigError("data.shortcut_control puts positives on the frame grid and negatives "
                      "off it: it needs data.frame_grid=true")
  if config.data.shortcut_control and config.train.negatives != "pairs":
    raise ConfigError("data.shortcut_control moves the sampled negatives off the grid, and "
                      f"train.negatives={config.train.negatives!r} samples none (its negatives "
                      "are the batch's positives): use train.negatives=pairs")
  if config.model.dtype not in nets.DTYPES:
    raise ConfigError(f"model.dtype={config.model.dtype!r}; use one of " + ", ".join(nets.DTYPES))


def check_workdir(workdir: str) -> None:
  """A workdir that exists must be a folder (one ConfigError line otherwise)."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir {workdir} is a file; give a folder (it is created if missing)")


def setup(config: ml_collections.ConfigDict) -> Setup:
  """Checks the settings, loads the clip table and builds the model, state and steps."""
  check_settings(config)
  mesh = runtime.data_mesh()
  batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

  # Data: the clip table (the embedded dataset unless data.root is set).
  dataset = index.load_dataset(config.data)
  index.require_pictures(dataset)

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
