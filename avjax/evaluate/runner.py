"""Building the configured evaluators and running them with one model pass per batch mode."""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional, Sequence

import ml_collections

from avjax.evaluate.avc import AvcEvaluator
from avjax.evaluate.common import Evaluator, PredictFn, Value, collect
from avjax.evaluate.localisation import LocalisationEvaluator
from avjax.evaluate.probe import ProbeEvaluator
from avjax.evaluate.retrieval import RetrievalEvaluator
from data_pipeline.clips import DataError

EVALUATORS = ("avc", "retrieval", "localisation", "probe")


def build_evaluators(eval_cfg: ml_collections.ConfigDict,
                     make_batches: Callable[[str], Iterable[dict]],
                     clips: Optional[Sequence], classes: Sequence[str],
                     ontology: Optional[Mapping[str, dict]] = None) -> list[Evaluator]:
  """The evaluators named in eval_cfg.evaluators.

  Args:
    eval_cfg: see `default_eval_config`.
    make_batches: make_batches(mode) -> a fresh iterable of eval batches, mode "pairs" or
      "positives" (data_pipeline.pipeline.eval_batches).
    clips: the clip list the batches index with clip_index (their labels give relevance).
    classes: class names, indexed by the batches' class_id.
    ontology: AudioSet ontology by id; with it, retrieval relevance is 20 - ontology distance.
  """
  unknown = [name for name in eval_cfg.evaluators if name not in EVALUATORS]
  if unknown:
    raise DataError(f"unknown evaluator(s) {', '.join(unknown)} in eval.evaluators; "
                    f"known: {', '.join(EVALUATORS)}")
  get = eval_cfg.get

  def factory(mode: str):
    return lambda: make_batches(mode)

  out = []
  for name in eval_cfg.evaluators:
    if name == "avc":
      out.append(AvcEvaluator(factory("pairs")))
    elif name == "retrieval":
      out.append(RetrievalEvaluator(
          factory("positives"), clips, classes, ontology, k=get("ndcg_k", 30),
          query_chunk=get("retrieval_query_chunk", 512), db_chunk=get("retrieval_db_chunk", 4096)))
    elif name == "localisation":
      out.append(LocalisationEvaluator(factory("positives"), size=get("loc_size", 224)))
    else:
      out.append(ProbeEvaluator(factory("positives"), folds=get("probe_folds", 5),
                                c=get("probe_c", 1.0), seed=get("seed", 0)))
  return out


def evaluate_all(evaluators: Sequence[Evaluator], predict_fn: PredictFn,
                 keep_inputs: int = 0) -> tuple[dict[str, Value], dict[str, dict]]:
  """Runs every evaluator; evaluators of the same mode share one pass of the model.

  The shared pass is the first evaluator's batches of that mode (all come from the same
  make_batches(mode)); its outputs are kept in memory (labels, boxes, features, maps: no
  images or audio but for the first keep_inputs rows) and handed to each evaluator's
  `evaluate`. Returns (results, collected by mode).
  """
  results: dict[str, Value] = {}
  by_mode: dict[str, list[Evaluator]] = {}
  for ev in evaluators:
    by_mode.setdefault(ev.mode, []).append(ev)
  collected_by_mode = {}
  for mode, group in by_mode.items():
    collected = collect(group[0].batches(), predict_fn, desc=f"eval {mode}",
                        keep_inputs=keep_inputs)
    for ev in group:
      results.update(ev.evaluate(collected))
    collected_by_mode[mode] = collected
  return results, collected_by_mode


def run_evaluators(evaluators: Sequence[Evaluator], predict_fn: PredictFn) -> dict[str, Value]:
  """The results of `evaluate_all` (one model pass per mode)."""
  return evaluate_all(evaluators, predict_fn)[0]
