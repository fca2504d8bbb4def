"""Runtime facts every entry point shares: the device mesh, the compile cache, the log level,
what SIGTERM and Ctrl-C do outside the training steps, whole-file writes."""

import logging
import os
import signal
import sys

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
    # Orbax logs through absl; its asyncio tasks' failures through asyncio.
    for name in ("absl", "asyncio"):
      logging.getLogger(name).addFilter(_no_orbax_tracebacks)
    for hook in ("excepthook", "unraisablehook"):
      setattr(sys, hook, _without_closed_loop_noise(getattr(sys, hook)))


def _is_closed_loop_noise(exc, tb) -> bool:
  """The error TensorStore's write callbacks raise, and print, when a failed Orbax save has
  already closed its event loop (the failure itself is reported by the trainer)."""
  if not (isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"):
    return False
  while tb is not None and tb.tb_next is not None:
    tb = tb.tb_next
  return tb is not None and tb.tb_frame.f_code.co_filename.endswith(
      os.path.join("asyncio", "base_events.py"))


def _without_closed_loop_noise(hook):
  def filtered(*args):
    if len(args) == 3:  # excepthook(type, value, traceback)
      noise = _is_closed_loop_noise(args[1], args[2])
    else:  # unraisablehook(unraisable)
      noise = _is_closed_loop_noise(args[0].exc_value, args[0].exc_traceback)
    if not noise:
      hook(*args)
  return filtered


def _no_orbax_tracebacks(record: logging.LogRecord) -> bool:
  """Drops the tracebacks Orbax's save threads and tasks log when a write fails (a full
  disk): the trainer reports that failure itself, in one line (checkpoint.CheckpointError)."""
  if not record.exc_info:
    return True
  marker = f"{os.sep}orbax{os.sep}"
  if marker in record.pathname or marker in str(record.msg) + str(record.args):
    return False
  tb = record.exc_info[2]
  while tb is not None:
    if marker in tb.tb_frame.f_code.co_filename:
      return False
    tb = tb.tb_next
  return True


def exit_at_once(message: str, status: int = 1) -> None:
  """Prints message and ends the process without the interpreter's shutdown, where threads
  and event loops a failed save left behind (Orbax's) print tracebacks that would bury the
  one line that matters. Data workers end with their parent; nothing else is pending."""
  print(message, file=sys.stderr)
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)  # pylint: disable=protected-access


class Interrupted(BaseException):
  """SIGTERM or Ctrl-C where the training loop does not turn it into a save (indexing,
  compiling, restoring, evaluating, or a second Ctrl-C). A BaseException, as
  KeyboardInterrupt is, so that no `except Exception` takes it for a bad file."""

  def __init__(self, signum: int):
    super().__init__(f"signal {signum}")
    self.signum = signum
    self.exit_code = 128 + signum  # 143 for SIGTERM, 130 for Ctrl-C


def _raise_interrupted(signum, frame):
  del frame
  raise Interrupted(signum)


def interrupt_on_stop_signals() -> None:
  """SIGTERM and Ctrl-C raise Interrupted wherever the main thread is: finally blocks run (the
  probe keeps the verdicts it has, its workers are stopped) and the entry point says so in
  one line. The training loop puts its own handler in place while it trains."""
  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, _raise_interrupted)


def write_atomic(path: str, text: str) -> None:
  """Writes a text file whole or not at all (temp file + rename): a kill or a signal midway
  leaves the previous version."""
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)
