"""Orbax checkpoints of the train state and the input iterator, saved together in one step.

Restoring both makes a resumed run see exactly the batches an uninterrupted run would:
none replayed, none skipped. SIGTERM (preemption) and Ctrl-C ask the loop to save and stop.
A checkpoint that cannot be read (a disk fault, a half-copied folder) is reported and the
next older one tried; training moves the damaged folder aside, so new saves never meet it.
"""

import os
import shutil
import signal
import sys
from typing import Any, Optional

import grain
import jax
import orbax.checkpoint as ocp

from avjax import runtime
from avjax.errors import ConfigError
from data_pipeline import media


class CheckpointError(RuntimeError):
  """A checkpoint could not be written (a full disk, lost storage); the message is one line."""


class Checkpointer:
  """A CheckpointManager in WORKDIR/checkpoints holding {"state", "data"} per step."""

  def __init__(self, workdir: str, keep: int = 3):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=("state", "data"))
    self._saving: Optional[int] = None  # the step whose background save was started last

  def latest_step(self) -> Optional[int]:
    return self.manager.latest_step()

  def step_to_restore(self, requested: Optional[int] = None) -> int:
    """`requested`, or the latest step when None; ConfigError (one line) when no such
    checkpoint exists."""
    step = requested if requested is not None else self.latest_step()
    if step is None:
      raise ConfigError(f"no checkpoint in {self.directory}: train first (--mode=train)")
    if step not in self.manager.all_steps():
      raise ConfigError(f"no checkpoint at step {step} in {self.directory}; "
                        f"steps: {list(self.manager.all_steps())}")
    return step

  def save(self, step: int, state: Any, data_iterator: Any) -> None:
    """Starts saving `step` in the background (after the previous save has finished)."""
    try:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          data=grain.checkpoint.CheckpointSave(data_iterator)), force=True)
    except Exception as err:  # pylint: disable=broad-except  # disk full, storage gone
      raise self._failed(step if self._saving is None else self._saving, err) from None
    self._saving = step

  def check(self) -> None:
    """CheckpointError (one line) when a background save has failed since the last check."""
    try:
      self.manager.check_for_errors()
    except Exception as err:  # pylint: disable=broad-except
      raise self._failed(self._saving, err) from None

  def _failed(self, step, err) -> "CheckpointError":
    good = [s for s in self.manager.all_steps() if s != step]
    kept = f"the newest complete one is step {max(good)}" if good else "none is complete"
    return CheckpointError(
        f"saving checkpoint step {step} in {self.directory} failed ({type(err).__name__}: "
        f"{media.failure_reason(err)}; is the disk full?); {kept}")

  def restore(self, step: int, state_template: Any, data_iterator: Any = None) -> Any:
    """The state at `step` (placed like `state_template`); restores the iterator in place."""
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state_template)
    items = {"state": ocp.args.StandardRestore(abstract)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    return self.manager.restore(step, args=ocp.args.Composite(**items))["state"]

  def restore_good(self, state_template: Any, data_iterator: Any = None,
                   requested: Optional[int] = None,
                   set_aside: bool = False) -> tuple[Optional[int], Any]:
    """(step, state) of the newest checkpoint that reads back, or of `requested` only.

    A damaged checkpoint is reported on stderr and the next older one tried; with set_aside
    (training), once an older one has read back, it is moved to WORKDIR/checkpoints_damaged/
    so that new saves never meet it. (None, state_template) when there is no checkpoint at
    all; ConfigError (one line) when none reads back (nothing is moved then).
    """
    if requested is not None:
      steps = [self.step_to_restore(requested)]
    else:
      steps = sorted(self.manager.all_steps(), reverse=True)
    if not steps:
      return None, state_template
    damaged = []
    for step in steps:
      try:
        state = self.restore(step, state_template, data_iterator)
      except Exception as err:  # pylint: disable=broad-except  # any unreadable checkpoint
        why = f"{type(err).__name__}: {media.failure_reason(err)}"
        damaged.append(f"step {step} ({why})")
        print(f"avjax: checkpoint step {step} in {self.directory} cannot be read ({why})",
              file=sys.stderr)
        continue
      if damaged:
        where = ""
        if set_aside and jax.process_index() == 0:
          for bad in steps[:len(damaged)]:
            self._set_aside(bad)
          where = f"; the damaged ones are in {self._damaged_dir()}"
        print(f"avjax: restored step {step} instead, the newest readable checkpoint{where}",
              file=sys.stderr)
      return step, state
    raise ConfigError(f"no readable checkpoint in {self.directory}: {'; '.join(damaged)}")

  def _damaged_dir(self) -> str:
    return os.path.join(os.path.dirname(self.directory), "checkpoints_damaged")

  def _set_aside(self, step: int) -> None:
    target = os.path.join(self._damaged_dir(), str(step))
    os.makedirs(self._damaged_dir(), exist_ok=True)
    if os.path.exists(target):
      shutil.rmtree(target)
    shutil.move(os.path.join(self.directory, str(step)), target)
    self.manager.reload()  # the manager lists steps from the folder

  def wait(self) -> None:
    try:
      self.manager.wait_until_finished()
    except Exception as err:  # pylint: disable=broad-except
      raise self._failed(self._saving, err) from None
    self.check()

  def close(self) -> None:
    self.wait()
    self.manager.close()


class StopRequest:
  """Turns SIGTERM and the first Ctrl-C into a flag the loop checks after each step."""

  def __init__(self):
    self.requested = False
    self.signum = 0  # the first signal received
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    if self.requested and signum == signal.SIGINT:
      raise runtime.Interrupted(signum)  # a second Ctrl-C stops at once
    if not self.requested:
      self.signum = signum
    self.requested = True

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    return False
