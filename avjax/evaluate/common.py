"""What every evaluator shares: one pass of the model over eval batches, kept as numpy arrays.

An evaluator (big_vision style) has `run(predict_fn) -> Iterator[(name, value)]`. Here each one
also says which batches it reads (`mode`: "pairs" or "positives") and splits its work into
`collect` (run the model over the batches once) and `evaluate(collected)`, so that
`run_evaluators` can share one pass of the model between the evaluators of the same mode.
Values are floats; evaluators may also yield string notes under "note/..." keys.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Union

import numpy as np
import tqdm

Batch = dict
PredictFn = Callable[[Batch], dict]
BatchesFactory = Callable[[], Iterable[Batch]]
Value = Union[float, str]

# Model inputs (and the decoded sound) are dropped after prediction, but for the first
# keep_inputs rows: only labels, boxes and outputs are kept for every row.
INPUT_KEYS = ("image", "audio", "wave")


def collect(batches: Iterable[Batch], predict_fn: PredictFn, desc: str = "eval",
            keep_inputs: int = 0) -> dict:
  """Runs predict_fn over the batches; returns batch fields and outputs over valid rows.

  Keys: every batch key except the model inputs, plus every output key of predict_fn
  (outputs override batch keys of the same name). Rows with valid=False are dropped. The
  inputs of the first keep_inputs valid rows are kept too, under "inputs/image",
  "inputs/audio" and "inputs/wave" (what pictures of those rows need, without decoding again).
  """
  parts: dict[str, list] = {}
  kept = 0
  for batch in tqdm.tqdm(batches, desc=desc, leave=False, unit="batch"):
    outputs = predict_fn(batch)
    rows = len(next(iter(batch.values())))
    valid = np.asarray(batch.get("valid", np.ones(rows, bool)), bool)
    merged = {k: v for k, v in batch.items() if k not in INPUT_KEYS}
    merged.update(outputs)
    for key, value in merged.items():
      value = np.asarray(value)
      if value.ndim and len(value) == rows:
        parts.setdefault(key, []).append(value[valid])
    if kept < keep_inputs:
      take = np.flatnonzero(valid)[:keep_inputs - kept]
      for key in INPUT_KEYS:
        if key in batch:
          parts.setdefault(f"inputs/{key}", []).append(np.asarray(batch[key])[take])
      kept += len(take)
  return {k: np.concatenate(v) for k, v in parts.items()}


class Evaluator:
  """Base class: `mode` names the batches; subclasses implement `evaluate(collected)`."""

  name = "evaluator"
  mode = "positives"

  def __init__(self, batches: BatchesFactory):
    self.batches = batches

  def evaluate(self, collected: dict) -> Iterator[tuple[str, Value]]:
    raise NotImplementedError

  def run(self, predict_fn: PredictFn) -> Iterator[tuple[str, Value]]:
    """Runs the model over this evaluator's batches and yields its (name, value) pairs."""
    yield from self.evaluate(collect(self.batches(), predict_fn, desc=self.name))
