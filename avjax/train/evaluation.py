"""Scoring a checkpoint: restore it, run the configured evaluators on a split, write metrics.json.

    evaluation = evaluate_checkpoint(config, workdir, step=None, split="test")
    evaluation.results      # {"step": 2400, "split": "test", "avc_accuracy": 0.93, ...}
    evaluation.collected    # the evaluators' arrays per batch mode (visualise draws from them)

The same `split_evaluators` serve the validation runs inside training.
"""

import dataclasses
import json
import os
from typing import Callable, Optional, Sequence

import jax
import ml_collections

from avjax import evaluate, runtime
from avjax.errors import ConfigError
from avjax.train import checkpoint as checkpoint_lib
from avjax.train.setup import check_workdir, make_predict_fn, setup
from data_pipeline import index, pair_lists, pipeline
from data_pipeline.clips import Clip


@dataclasses.dataclass
class Evaluation:
  """A checkpoint's scores on one split, with what the pictures need to draw them."""
  results: dict               # metrics and notes, plus "step" and "split"
  collected: dict             # batch mode -> the evaluators' arrays (evaluate.collect)
  predict_fn: Callable        # the restored net, batch -> numpy outputs
  make_batches: Callable      # mode -> fresh eval batches of the split
  clips: Sequence[Clip]       # the split's clips, indexed by clip_index
  classes: Sequence[str]      # class names, indexed by class_id


def split_batches(config: ml_collections.ConfigDict, clips: Sequence[Clip],
                  dataset: Optional[index.Dataset] = None) -> Callable:
  """make_batches(mode, **batch_options) -> the split's fixed, seeded eval batches of that
  mode (the options are the evaluators' own, e.g. the AVC pairs' frames_per_clip; pair_list,
  a published non-sounding pair list resolved on the split and its `dataset`; split and
  max_clips, the batches of another split of `dataset` instead, e.g. CCA's training features)."""
  resolved = {}

  def make_batches(mode: str, pair_list: str = "", split: str = "", max_clips: int = 0,
                   **batch_options):
    if split:
      if dataset is None or not dataset.split(split):
        raise ConfigError(f"no '{split}' clips to fit on (an evaluator's fit_split)")
      return pipeline.eval_batches(config.data, index.cap_clips(dataset.split(split), max_clips),
                                   batch_size=config.eval.batch_size, seed=config.eval.seed,
                                   mode=mode, **batch_options)
    if pair_list:
      if pair_list not in resolved:
        if dataset is None:
          raise ConfigError("a pair list needs the dataset its sounds come from")
        pl = pair_lists.resolve(pair_list, clips, dataset.clips, dataset.root,
                                config.data.per_file_timeout_s)
        if jax.process_index() == 0:
          print(pl.summary(pair_list), flush=True)
        resolved[pair_list] = pl.negatives
      batch_options["negatives"] = resolved[pair_list]
    return pipeline.eval_batches(config.data, clips, batch_size=config.eval.batch_size,
                                 seed=config.eval.seed, mode=mode, **batch_options)

  return make_batches


def split_evaluators(config: ml_collections.ConfigDict, dataset: index.Dataset,
                     split: str) -> list:
  """The config's evaluators on one split of the dataset (fixed, seeded eval batches)."""
  clips = dataset.split(split)
  if not clips:
    raise ConfigError(f"the dataset has no '{split}' clips to evaluate on")
  return evaluate.build_evaluators(config.eval, split_batches(config, clips, dataset), clips,
                                   dataset.classes, ontology=dataset.ontology)


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        checkpoint_step: Optional[int] = None,
                        split: str = "test") -> Evaluation:
  """Scores a checkpoint of workdir (default: the latest) on `split`; writes
  workdir/eval/metrics.json and prints the table (process 0)."""
  check_workdir(workdir)
  s = setup(config)
  ckpt = checkpoint_lib.Checkpointer(workdir)
  try:
    step, state = ckpt.restore_good(s.state, requested=checkpoint_step)
    if step is None:
      ckpt.step_to_restore()  # raises: no checkpoint, train first
  finally:
    ckpt.close()
  evaluators = split_evaluators(config, s.dataset, split)
  clips = s.dataset.split(split)
  predict_fn = make_predict_fn(s, state)
  # The first "positives" rows keep their inputs, for the pictures drawn from them afterwards
  # (the pictures read no other mode).
  keep = {"positives": config.eval.picture_items} if config.eval.pictures else {}
  results, collected = evaluate.evaluate_all(
      evaluators, predict_fn, keep_inputs=keep,
      clip_ids=[c.clip_id or c.path for c in clips],
      bootstrap_samples=config.eval.bootstrap_samples, seed=config.eval.seed)
  results = {"step": int(step), "split": split, **results}
  out_dir = os.path.join(workdir, "eval")
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
    runtime.write_atomic(os.path.join(out_dir, "metrics.json"),
                         json.dumps(results, indent=2, default=float))
    print(evaluate.format_table(results))
    print(f"Metrics written to {os.path.join(out_dir, 'metrics.json')}")
  return Evaluation(results, collected, predict_fn, split_batches(config, clips, s.dataset),
                    clips, s.dataset.classes)
