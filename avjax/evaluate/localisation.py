"""Localisation evaluator: cIoU / AUC (LVS, EZ-VSL protocol), pointing and distractor picks.

The ground truth of an image is its target box region (rows whose target_box is -1 are left
out). Every metric is also given for a centre prior (a centred Gaussian map, sigma = 1/4 of the
side) under "baseline/centre/...", the score of a model that always points at the middle.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from avjax.evaluate import metrics
from avjax.evaluate.common import BatchesFactory, Evaluator, Value


def localisation_metrics(maps: np.ndarray, target_boxes: np.ndarray,
                         distractor_boxes: np.ndarray, size: int = 224) -> dict[str, float]:
  """loc/ciou_ap50, loc/auc, loc/ciou_mean, loc/pointing and (when any image has a distractor
  box) loc/distractor_pick = the fraction of those images whose peak is on a distractor."""
  out = {f"loc/{k}": v
         for k, v in metrics.ciou_summary(metrics.ciou_scores(maps, target_boxes, size)).items()}
  out["loc/pointing"] = float(np.mean(metrics.pointing_hits(maps, target_boxes)))
  picked, has = metrics.distractor_picks(maps, target_boxes, distractor_boxes)
  if has.any():
    out["loc/distractor_pick"] = float(np.mean(picked[has]))
  return out


class LocalisationEvaluator(Evaluator):
  """Yields loc/* for the model's loc_map and baseline/centre/loc/* for the centre prior."""

  name = "localisation"
  mode = "positives"

  def __init__(self, batches: BatchesFactory, size: int = 224, centre_sigma: float = 0.25):
    super().__init__(batches)
    self.size, self.centre_sigma = size, centre_sigma

  def evaluate(self, collected: dict) -> Iterator[tuple[str, Value]]:
    if "loc_map" not in collected:
      yield "note/localisation", "the model gives no localisation map (only AVOL-Net does)"
      return
    boxes = collected.get("target_box")
    known = (np.all(boxes >= 0, axis=-1) if boxes is not None
             else np.zeros(len(collected["loc_map"]), bool))
    if not known.any():
      yield "note/localisation", "no evaluated clip has a target box: localisation not scored"
      return
    maps = collected["loc_map"][known]
    targets = boxes[known]
    distractors = collected.get("distractor_boxes")
    distractors = (distractors[known] if distractors is not None
                   else -np.ones((len(maps), 1, 4), np.float32))
    model = localisation_metrics(maps, targets, distractors, self.size)
    centre = metrics.centre_prior_maps(len(maps), self.size, self.size, self.centre_sigma)
    baseline = localisation_metrics(centre, targets, distractors, self.size)
    for key, value in model.items():
      yield key, value
    for key, value in baseline.items():
      yield f"baseline/centre/{key}", value
    if "loc/distractor_pick" not in model:
      yield "note/localisation", "no image has a distractor box: distractor_pick not scored"
    yield "loc/num_images", float(len(maps))
