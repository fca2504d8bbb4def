"""Localisation evaluator: cIoU / AUC (LVS, EZ-VSL protocol), pointing and distractor picks.

Images whose target_box is -1 (unknown) are left out. cIoU is measured against the published
ground-truth map of the row's gt_boxes and gt_consensus (metrics.gt_maps): for Flickr-SoundNet
the annotators' boxes summed, halved and clipped to 1; for VGG-SS the union of its boxes; for
the embedded dataset (and batches without gt_boxes) the target box. Pointing and distractor
picks use the target box (Flickr-SoundNet: the annotators' median box). Every metric is also
given for a centre prior (a centred Gaussian map, sigma = 1/4 of the side) under
"baseline/centre/...", the score of a model that always points at the middle.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from avjax.evaluate import metrics, registry
from avjax.evaluate.common import BatchesFactory, Evaluator, Value


def localisation_metrics(maps: np.ndarray, target_boxes: np.ndarray,
                         distractor_boxes: np.ndarray, size: int = 224,
                         gt_boxes: Optional[np.ndarray] = None,
                         gt_consensus: Optional[np.ndarray] = None) -> dict[str, float]:
  """loc/ciou_ap50, loc/auc, loc/ciou_mean, loc/pointing and (when any image has a distractor
  box) loc/distractor_pick = the fraction of those images whose peak is on a distractor.

  cIoU is against the ground-truth maps of gt_boxes [B, K, 4] with gt_consensus [B]
  (metrics.gt_maps), by default against the target boxes [B, 4].
  """
  gt = target_boxes if gt_boxes is None else gt_boxes
  cious = metrics.ciou_scores(maps, gt, size, consensus=gt_consensus)
  out = {f"loc/{k}": v for k, v in metrics.ciou_summary(cious).items()}
  out["loc/pointing"] = float(np.mean(metrics.pointing_hits(maps, target_boxes)))
  picked, has = metrics.distractor_picks(maps, target_boxes, distractor_boxes)
  if has.any():
    out["loc/distractor_pick"] = float(np.mean(picked[has]))
  return out


@registry.register
class LocalisationEvaluator(Evaluator):
  """Yields loc/* for the model's loc_map and baseline/centre/loc/* for the centre prior."""

  name = "localisation"
  mode = "positives"
  defaults = {"size": 224}  # maps are scored at size^2 (LVS / EZ-VSL: 224)

  def __init__(self, batches: BatchesFactory, size: int = 224, centre_sigma: float = 0.25):
    super().__init__(batches)
    self.size, self.centre_sigma = size, centre_sigma

  @staticmethod
  def baseline(key: str) -> Optional[str]:
    return "baseline/centre/" + key if key.startswith("loc/") else None

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
    gt = {k: collected[k][known] for k in ("gt_boxes", "gt_consensus") if k in collected}
    model = localisation_metrics(maps, targets, distractors, self.size, **gt)
    centre = metrics.centre_prior_maps(len(maps), self.size, self.size, self.centre_sigma)
    baseline = localisation_metrics(centre, targets, distractors, self.size, **gt)
    for key, value in model.items():
      yield key, value
    for key, value in baseline.items():
      yield f"baseline/centre/{key}", value
    if "loc/distractor_pick" not in model:
      yield "note/localisation", "no image has a distractor box: distractor_pick not scored"
    yield "loc/num_images", float(len(maps))
