"""Batches from the input pipeline, with its worker processes watched while the trainer waits.

A Grain worker that dies (the OOM killer, a decoder crash that takes the process down) can
leave the trainer waiting forever for a batch that will never come. `GuardedBatches` fetches
each batch on a helper thread and, while it waits, checks every second that the worker
processes this process started are still alive; a dead one is a `WorkerDied` error naming the
worker and its signal, so the loop can save the step it reached and stop. The check reads
/proc (Linux); elsewhere the batches are fetched the same way, unwatched.
"""

import os
import queue
import signal
import threading
from typing import Iterator, Optional

POLL_S = 1.0


class WorkerDied(RuntimeError):
  """A worker process of the input pipeline ended while the trainer waited for a batch."""

  def __init__(self, message: str, pid: int = 0):
    super().__init__(message)
    self.pid = pid


def worker_processes(parent: int) -> dict[int, str]:
  """{pid: "state exit_code"} of parent's multiprocessing spawn children, zombies too."""
  out = {}
  try:
    names = os.listdir("/proc")
  except OSError:
    return out
  for name in names:
    if not name.isdigit():
      continue
    try:
      with open(f"/proc/{name}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
      if int(fields[1]) != parent:
        continue
      with open(f"/proc/{name}/cmdline", "rb") as f:
        if b"spawn_main" not in f.read():
          continue
    except (OSError, IndexError, ValueError):
      continue
    out[int(name)] = f"{fields[0]} {fields[-1]}"
  return out


def _death(status: str) -> str:
  code = int(status.split()[1]) if status.split()[1:] else 0
  if code & 0x7F:
    return f"killed by signal {code & 0x7F}"
  return f"exit status {code >> 8}"


class GuardedBatches:
  """next(guarded) is next(iterator), or WorkerDied when a watched worker died meanwhile."""

  def __init__(self, iterator: Iterator):
    self._iterator = iterator
    self._known: dict[int, str] = {}
    self._requests: queue.Queue = queue.Queue()
    self._results: queue.Queue = queue.Queue()
    self._thread: Optional[threading.Thread] = None

  def _fetch_forever(self) -> None:
    while self._requests.get():
      try:
        self._results.put((True, next(self._iterator)))
      except BaseException as err:  # pylint: disable=broad-except  # handed to the caller
        self._results.put((False, err))

  def __next__(self):
    if self._thread is None:
      # A daemon thread: one stuck on a dead worker must not hold up the interpreter's exit.
      self._thread = threading.Thread(target=self._fetch_forever, name="batches", daemon=True)
      self._thread.start()
    self._requests.put(True)
    while True:
      try:
        ok, value = self._results.get(timeout=POLL_S)
      except queue.Empty:
        self._check_workers()
        continue
      if ok:
        return value
      # Grain may see the dead worker first ("Worker process was terminated unexpectedly",
      # no pid): the worker named when it can be.
      self._check_workers()
      raise value

  def _check_workers(self) -> None:
    now = worker_processes(os.getpid())
    for pid, status in now.items():
      if status.startswith("Z"):
        raise WorkerDied(f"data worker process {pid} died ({_death(status)})", pid)
    for pid in self._known.keys() - now.keys():
      raise WorkerDied(f"data worker process {pid} ended", pid)
    self._known = now

  def __iter__(self):
    return self


_ABANDONED = []  # failed pipelines, kept from the garbage collector's close() until exit


def abandon(iterator) -> None:
  """After a failure of the pipeline (a dead worker): stops the workers still alive and closes
  the pipeline on a daemon thread, for at most a few seconds; its own close can wait forever
  for a dead worker."""
  for pid, status in worker_processes(os.getpid()).items():
    if not status.startswith("Z"):
      try:
        os.kill(pid, signal.SIGKILL)
      except OSError:
        pass

  def close():
    try:
      iterator.close()
    except Exception:  # pylint: disable=broad-except  # a half-dead pipeline: nothing to keep
      pass

  closer = threading.Thread(target=close, name="close-pipeline", daemon=True)
  closer.start()
  closer.join(10.0)
  _ABANDONED.append(iterator)
