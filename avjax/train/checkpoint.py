"""Orbax checkpoints of the train state and the input iterator, saved together in one step.

Restoring both makes a resumed run see exactly the batches an uninterrupted run would:
none replayed, none skipped. SIGTERM (preemption) and Ctrl-C ask the loop to save and stop.
"""

import os
import signal
from typing import Any, Optional

import grain
import jax
import orbax.checkpoint as ocp

from avjax.errors import ConfigError


class Checkpointer:
  """A CheckpointManager in WORKDIR/checkpoints holding {"state", "data"} per step."""

  def __init__(self, workdir: str, keep: int = 3):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=("state", "data"))

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
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(data_iterator)), force=True)

  def restore(self, step: int, state_template: Any, data_iterator: Any = None) -> Any:
    """The state at `step` (placed like `state_template`); restores the iterator in place."""
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state_template)
    items = {"state": ocp.args.StandardRestore(abstract)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    return self.manager.restore(step, args=ocp.args.Composite(**items))["state"]

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
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
      raise KeyboardInterrupt  # a second Ctrl-C stops at once
    if not self.requested:
      self.signum = signum
    self.requested = True

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    return False
