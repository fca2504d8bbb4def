"""Building the configured evaluators and running them with one model pass per batch mode."""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional, Sequence

import ml_collections

from avjax.errors import ConfigError
from avjax.evaluate import intervals, protocols, registry
from avjax.evaluate.common import EvalContext, Evaluator, PredictFn, Value, collect
from avjax.evaluate.intervals import RESAMPLEABLE, Resampleable
from avjax.evaluate.table import baselines, lower_is_better
from data_pipeline.pairs import AUDIO_KINDS


def _block(eval_cfg: ml_collections.ConfigDict, evaluator: type) -> dict:
  """The evaluator's config block eval.<name> over its defaults (a missing block: defaults)."""
  given = eval_cfg.get(evaluator.name) or {}
  unknown = sorted(set(given) - set(evaluator.defaults))
  if unknown:
    raise ConfigError(f"unknown key(s) {', '.join(unknown)} in eval.{evaluator.name}; "
                      f"keys: {', '.join(evaluator.defaults)}")
  return {**evaluator.defaults, **given}


def build_evaluators(eval_cfg: ml_collections.ConfigDict,
                     make_batches: Callable[..., Iterable[dict]],
                     clips: Optional[Sequence], classes: Sequence[str],
                     ontology: Optional[Mapping[str, dict]] = None) -> list[Evaluator]:
  """The evaluators named in eval_cfg.evaluators, each built from its block eval.<name>.

  Args:
    eval_cfg: see `default_eval_config`.
    make_batches: make_batches(mode, **batch_options) -> a fresh iterable of eval batches,
      mode "pairs" or "positives" (data_pipeline.pipeline.eval_batches).
    clips: the clip list the batches index with clip_index (their labels give relevance).
    classes: class names, indexed by the batches' class_id.
    ontology: AudioSet ontology by id; with it, retrieval relevance is 20 - ontology distance.

  Raises:
    ConfigError: an evaluator name nobody registered, an unknown key in a block, or an unknown
      eval.loc_protocol.
  """
  known = registry.registered()
  unknown = [name for name in eval_cfg.evaluators if name not in known]
  if unknown:
    raise ConfigError(f"unknown evaluator(s) {', '.join(unknown)} in eval.evaluators; "
                      f"known: {', '.join(known)}")
  protocol = eval_cfg.get("loc_protocol", "ezvsl")
  if protocol not in protocols.PROTOCOLS:
    raise ConfigError(f"eval.loc_protocol must be one of {', '.join(protocols.PROTOCOLS)}, "
                      f"got {protocol!r}")
  context = EvalContext(make_batches, clips, list(classes), ontology,
                        seed=eval_cfg.get("seed", 0),
                        loc_protocol=protocol)
  return [known[name].from_config(_block(eval_cfg, known[name]), context)
          for name in eval_cfg.evaluators]


# A mode whose rows are some of another mode's, in the same order: (that mode, the audio_kind
# of those rows). Each clip's "positives" row (the middle frame with its own sound) is its
# "own" row of the "extended" pass, so when both run the split is decoded and predicted once.
SUBSET_MODES = {"positives": ("extended", AUDIO_KINDS.index("own"))}


def _rows_of_kind(collected: dict, kind: int) -> dict:
  """The rows of a collected pass whose audio_kind is kind (kept inputs are already theirs)."""
  rows = collected["audio_kind"] == kind
  return {key: value if key.startswith("inputs/") else value[rows]
          for key, value in collected.items()}


def evaluate_all(evaluators: Sequence[Evaluator], predict_fn: PredictFn,
                 keep_inputs: Optional[Mapping[str, int]] = None,
                 clip_ids: Optional[Sequence[str]] = None, bootstrap_samples: int = 1000,
                 seed: int = 0) -> tuple[dict[str, Value], dict[str, dict]]:
  """Runs every evaluator; evaluators of the same mode share one pass of the model, and a
  mode whose rows another mode's pass holds (SUBSET_MODES) reads them from that pass.

  The shared pass is the first evaluator's batches of that mode (all come from the same
  make_batches(mode), and evaluators of one mode ask for the same batch options); its outputs
  are kept in memory (labels, boxes, features, maps: no images or audio but for the first
  keep_inputs[mode] rows) and handed to each evaluator's `evaluate`.

  With clip_ids (the split's clip ids, indexed by clip_index), results["scoring"] gives each
  resampled metric its bootstrap interval over clips, its counts of scored and expected clips
  and its gain over its best trivial baseline (avjax.evaluate.intervals.scoring), drawn with
  `seed`. Returns (results, collected by mode).
  """
  results: dict[str, Value] = {}
  per_clip: dict[str, Resampleable] = {}
  by_mode: dict[str, list[Evaluator]] = {}
  for ev in evaluators:
    by_mode.setdefault(ev.mode, []).append(ev)
  keep_inputs = dict(keep_inputs or {})
  shared = {mode: (superset, kind) for mode, (superset, kind) in SUBSET_MODES.items()
            if mode in by_mode and superset in by_mode and not keep_inputs.get(superset)}
  collected_by_mode: dict[str, dict] = {}

  def pass_of(mode: str) -> dict:
    if mode not in collected_by_mode:
      if mode in shared:
        superset, kind = shared[mode]
        collected_by_mode[mode] = _rows_of_kind(pass_of(superset), kind)
      else:
        keep, kind = keep_inputs.get(mode, 0), None
        for sub, (superset, sub_kind) in shared.items():
          if superset == mode:  # the inputs kept are the subset's rows
            keep, kind = keep_inputs.get(sub, 0), sub_kind
        collected_by_mode[mode] = collect(by_mode[mode][0].batches(), predict_fn,
                                          desc=f"eval {mode}", keep_inputs=keep,
                                          keep_kind=kind)
    return collected_by_mode[mode]

  for mode, group in by_mode.items():
    collected = pass_of(mode)
    for ev in group:
      ev.fit_with(predict_fn)
      for name, value in ev.evaluate(collected):
        if isinstance(value, RESAMPLEABLE):
          per_clip[name], value = value, value.value()
        results[name] = value
  if clip_ids is not None and per_clip:
    results["scoring"] = intervals.scoring(
        per_clip, results, lambda key: baselines(key, results), clip_ids,
        samples=bootstrap_samples, seed=seed, lower_is_better=lower_is_better)
  return results, collected_by_mode


def run_evaluators(evaluators: Sequence[Evaluator], predict_fn: PredictFn) -> dict[str, Value]:
  """The results of `evaluate_all` (one model pass per mode)."""
  return evaluate_all(evaluators, predict_fn)[0]
