"""What every evaluator shares: one pass of the model over eval batches, kept as numpy arrays.

An evaluator (big_vision style) has `run(predict_fn) -> Iterator[(name, value)]`. Here each one
also says which batches it reads (`mode`: "pairs" or "positives") and splits its work into
`collect` (run the model over the batches once) and `evaluate(collected)`, so that
`run_evaluators` can share one pass of the model between the evaluators of the same mode.
Values are floats, or `intervals.PerClip` / `ByRowWeights` for a metric the runner can resample
over clips (it stores the float and gives the metric its bootstrap interval); evaluators may
also yield string notes under "note/..." keys.

Each evaluator class also declares its config block (`defaults`, eval.<name>), how it is
built from that block (`from_config`) and which result is the baseline of each of its metrics
(`baseline`); registered by name (avjax.evaluate.registry), that is all the config, the runner
and the results table need to know of it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import tqdm

from avjax.evaluate.intervals import RESAMPLEABLE, Resampleable

Batch = dict
PredictFn = Callable[[Batch], dict]
BatchesFactory = Callable[[], Iterable[Batch]]
Value = Union[float, str, Resampleable]

# Model inputs (and the decoded sound) are dropped after prediction, but for the first
# keep_inputs rows: only labels, boxes and outputs are kept for every row.
INPUT_KEYS = ("image", "audio", "wave")


def collect(batches: Iterable[Batch], predict_fn: PredictFn, desc: str = "eval",
            keep_inputs: int = 0, keep_kind: Optional[int] = None) -> dict:
  """Runs predict_fn over the batches; returns batch fields and outputs over valid rows.

  Keys: every batch key except the model inputs, plus every output key of predict_fn
  (outputs override batch keys of the same name). Rows with valid=False are dropped. The
  inputs of the first keep_inputs valid rows (of those whose audio_kind is keep_kind, when it
  is given) are kept too, under "inputs/image", "inputs/audio" and "inputs/wave" (what
  pictures of those rows need, without decoding again).
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
      keep = valid if keep_kind is None else valid & (np.asarray(batch["audio_kind"]) == keep_kind)
      take = np.flatnonzero(keep)[:keep_inputs - kept]
      for key in INPUT_KEYS:
        if key in batch:
          parts.setdefault(f"inputs/{key}", []).append(np.asarray(batch[key])[take])
      kept += len(take)
  return {k: np.concatenate(v) for k, v in parts.items()}


@dataclasses.dataclass(frozen=True)
class Chance:
  """A fixed line a metric is read against when no result holds its baseline."""
  value: float
  label: str


@dataclasses.dataclass(frozen=True)
class EvalContext:
  """What evaluators are built from besides their config block.

  Attributes:
    make_batches: make_batches(mode, **batch_options) -> a fresh iterable of eval batches,
      mode "pairs" or "positives" (data_pipeline.pipeline.eval_batches; "pairs" takes
      frames_per_clip).
    clips: the clip list the batches index with clip_index (their labels give relevance).
    classes: class names, indexed by the batches' class_id.
    ontology: AudioSet ontology by id, or None.
    seed: eval.seed, for evaluators that draw at random (the probe's folds).
    loc_protocol: eval.loc_protocol, the published script whose cIoU the localisation
      evaluators reproduce (avjax.evaluate.protocols).
  """
  make_batches: Callable[..., Iterable[Batch]]
  clips: Optional[Sequence]
  classes: Sequence[str]
  ontology: Optional[Mapping[str, dict]] = None
  seed: int = 0
  loc_protocol: str = "ezvsl"

  def batches(self, mode: str, **batch_options) -> BatchesFactory:
    """A factory of this mode's batches, made with the given options."""
    return lambda: self.make_batches(mode, **batch_options)


class Evaluator:
  """Base class: `mode` names the batches; subclasses implement `evaluate(collected)`.

  Class attributes: `name` (its name in eval.evaluators and its config block eval.<name>),
  `mode` (the batches it reads: "pairs" or "positives"), `defaults` (the block's fields
  and their default values) and `lower_is_better` (metrics whose gain over a baseline is the
  baseline minus the metric).
  """

  name = "evaluator"
  mode = "positives"
  defaults: Mapping[str, Any] = {}
  lower_is_better: frozenset = frozenset()  # its metrics where a lower value is better
  # Batches of another split the evaluator learns from before it scores (CCA's training
  # features): when set, the runner collects them and calls `fit` first.
  fit_batches: Optional[BatchesFactory] = None

  def __init__(self, batches: BatchesFactory):
    self.batches = batches

  @classmethod
  def from_config(cls, block: Mapping[str, Any], context: EvalContext) -> Evaluator:
    """The evaluator set up by its config block (every field of `defaults`)."""
    return cls(context.batches(cls.mode), **block)

  @staticmethod
  def baseline(key: str) -> Optional[Union[str, Chance, tuple[str, ...]]]:
    """What the result `key` of this evaluator is read against: the key of another result (or
    a tuple of them, its trivial baselines), a fixed Chance line, or None (not one of its
    metrics, or one without a baseline)."""
    del key
    return None

  def fit(self, collected: dict) -> None:
    """Learns from what the net gave on `fit_batches` (only called when those are set)."""
    del collected

  def fit_with(self, predict_fn: PredictFn) -> None:
    """Runs the net over `fit_batches`, when set, and fits on what it gave."""
    if self.fit_batches is not None:
      self.fit(collect(self.fit_batches(), predict_fn, desc=f"fit {self.name}"))

  def evaluate(self, collected: dict) -> Iterator[tuple[str, Value]]:
    raise NotImplementedError

  def run(self, predict_fn: PredictFn) -> Iterator[tuple[str, Value]]:
    """Runs the model over this evaluator's batches and yields its (name, value) pairs, each
    resampleable metric as its float value."""
    self.fit_with(predict_fn)
    for name, value in self.evaluate(collect(self.batches(), predict_fn, desc=self.name)):
      yield name, value.value() if isinstance(value, RESAMPLEABLE) else value
