"""Runtime facts every entry point shares: the device mesh, the compile cache, the log level."""

import logging
import os

import jax


def data_mesh() -> jax.sharding.Mesh:
  """One "data" axis over every device of every process (batches split, state replicated)."""
  return jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))


def enable_compile_cache() -> None:
  """Compiled programs cached on disk ($AVJAX_JAX_CACHE, default ~/.cache/avjax/jax), so a
  second start of the same experiment skips XLA. A cache dir already set (JAX's own config or
  environment) is kept."""
  if not jax.config.jax_compilation_cache_dir:
    jax.config.update("jax_compilation_cache_dir", os.environ.get(
        "AVJAX_JAX_CACHE", os.path.expanduser("~/.cache/avjax/jax")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def quiet_logs(verbosity_given: bool) -> None:
  """Warnings and up only, unless a verbosity was asked for (-v 0): Orbax and Grain log every
  save at INFO."""
  if not verbosity_given:
    for name in ("", "absl"):
      logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("absl").addFilter(_no_orbax_tracebacks)


def _no_orbax_tracebacks(record: logging.LogRecord) -> bool:
  """Drops the tracebacks Orbax's save threads log when a write fails (a full disk): the
  trainer reports that failure itself, in one line (checkpoint.CheckpointError)."""
  return not (record.exc_info and f"{os.sep}orbax{os.sep}" in record.pathname)
