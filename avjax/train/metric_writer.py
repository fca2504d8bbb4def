"""Writes scalar metrics to WORKDIR/metrics.jsonl and to TensorBoard event files.

A resumed run first drops the rows past the step it resumed from (logged by a run that was
stopped before it saved them; they are logged again) and any line a kill cut short, so the
file holds each step once, in order.
"""

import json
import math
import os
from typing import Mapping

import jax

from avjax.metrics_file import read_row


class MetricWriter:
  """Appends one JSON object per call to metrics.jsonl; scalars also go to TensorBoard.

  Only process 0 writes. Non-numeric values (notes) go to the JSON line only.
  """

  def __init__(self, workdir: str, resume_step: int = 0):
    self.enabled = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      self._keep_rows_up_to(resume_step)
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, metrics: Mapping[str, object]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step)}
    for key, value in metrics.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        row[key] = float(value) if math.isfinite(value) else str(value)
        self._tb.add_scalar(key, float(value), int(step))
      else:
        row[key] = value
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")

  def _keep_rows_up_to(self, step: int) -> None:
    if not os.path.exists(self.path):
      return
    kept = []
    with open(self.path) as f:
      for line in f:
        row = read_row(line)
        if row is not None and row.get("step", step + 1) <= step:
          kept.append(line if line.endswith("\n") else line + "\n")
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(kept)
    os.replace(tmp, self.path)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
