"""Writes scalar metrics to WORKDIR/metrics.jsonl and to TensorBoard event files."""

import json
import math
import os
from typing import Mapping

import jax


class MetricWriter:
  """Appends one JSON object per call to metrics.jsonl; scalars also go to TensorBoard.

  Only process 0 writes. Non-numeric values (notes) go to the JSON line only.
  """

  def __init__(self, workdir: str):
    self.enabled = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
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

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
