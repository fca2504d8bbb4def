"""Localisation evaluator: cIoU AP50 / AUC as a published script scores them, pointing and
distractor picks, beside trivial maps.

cIoU follows `eval.loc_protocol` (avjax.evaluate.protocols: "lvs", "ezvsl" or "slavc"; default
"ezvsl"), which fixes the map's upsampling, normalisation and threshold, the boxes'
rasterisation and the images counted. The map scored is the net's raw score map: AVOL-Net's
calibrated logits (loc_logits), where the scripts take the raw audio-visual similarity; for
"slavc", whose fixed threshold is cosine >= 0, a pixel is on where its logit is >= 0 (p >= 0.5).
The ground truth is the row's gt_boxes with gt_consensus: 2 for Flickr-SoundNet's annotators
(summed, halved, clipped to 1), 1 for VGG-SS's union and for a single target box (the embedded
dataset). Images whose target_box is -1 (unknown) are left out. Pointing and distractor picks
use the peak of the map and the target box (Flickr-SoundNet: the annotators' median box).

Every metric is also given for three maps that know nothing of the sound, under
"baseline/<name>/...", with values in [-1, 1] so that a fixed threshold at 0 sees both signs:
`centre` (a centred Gaussian, sigma = 1/4 of the side, 2 g - 1: a net that always points at
the middle), `whole` (the constant 1: the whole image; it has no peak, so no pointing or
distractor score) and `random` (uniform noise at the net's map size, seeded by eval.seed). The
results table reads each metric against the best of them.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional

import numpy as np

from avjax.evaluate import metrics, protocols, registry
from avjax.evaluate.common import BatchesFactory, EvalContext, Evaluator, Value
from avjax.evaluate.intervals import PerClip

TRIVIAL_MAPS = ("centre", "whole", "random")
DEFAULT_PROTOCOL = "ezvsl"
_PEAKED = ("pointing", "distractor_pick")  # metrics of a map's peak


def localisation_metrics(maps: np.ndarray, target_boxes: np.ndarray,
                         distractor_boxes: np.ndarray, clips: np.ndarray,
                         protocol: str = DEFAULT_PROTOCOL, size: int = 224,
                         gt_boxes: Optional[np.ndarray] = None,
                         gt_consensus: Optional[np.ndarray] = None,
                         peaked: bool = True) -> dict[str, PerClip]:
  """loc/ciou_ap50, loc/auc, loc/ciou_mean and (peaked) loc/pointing and, when any image has a
  distractor box, loc/distractor_pick (the fraction of those images whose peak is on a
  distractor), each per image with its clip (clips [B]).

  cIoU is the protocol's (protocols.ciou_per_image) against gt_boxes [B, K, 4] with
  gt_consensus [B], by default against the target boxes [B, 4] (consensus 1); the images
  counted are the protocol's (slavc: those with a box). ciou_mean is over the images whose
  cIoU is defined (the scripts' 0 / 0 is NaN).
  """
  gt = target_boxes[:, None] if gt_boxes is None else gt_boxes
  consensus = np.ones(len(maps), np.int64) if gt_consensus is None else gt_consensus
  cious = protocols.ciou_per_image(protocol, maps, gt, consensus, size)
  counted = (protocols.box_counts(gt) > 0 if protocol == "slavc"
             else np.ones(len(maps), bool))
  c, at = cious[counted], clips[counted]
  out = {
      "loc/ciou_ap50": PerClip.mean(c >= 0.5, at),  # a NaN cIoU counts as a miss
      "loc/auc": PerClip(c[:, None] >= metrics.AUC_THRESHOLDS[None], at,
                         metrics.auc_of_success),
      "loc/ciou_mean": PerClip.mean(c, at)}
  if peaked:
    out["loc/pointing"] = PerClip.mean(metrics.pointing_hits(maps, target_boxes), clips)
    picked, has = metrics.distractor_picks(maps, target_boxes, distractor_boxes)
    if has.any():
      out["loc/distractor_pick"] = PerClip.mean(picked[has], clips[has])
  return out


def scored_maps(collected: dict) -> np.ndarray:
  """The map the protocols score: the raw calibrated logits when the net gives them (the
  scripts score the raw similarity), else its loc_map."""
  return collected.get("loc_logits", collected["loc_map"])


def trivial_maps(name: str, n: int, shape: tuple[int, int], size: int, seed: int,
                 centre_sigma: float = 0.25) -> np.ndarray:
  """[n, h, w] maps of a trivial baseline, values in [-1, 1]: centre (at size x size), whole
  or random (at the net's map shape). The centre and whole maps are the same for every image,
  so they are read-only broadcast views of one map (VGG-SS's 5k centre maps would otherwise
  take 2 GB)."""
  if name == "centre":
    return np.broadcast_to(2 * metrics.centre_prior_maps(1, size, size, centre_sigma)[0] - 1,
                           (n, size, size))
  if name == "whole":
    return np.broadcast_to(np.ones(tuple(shape)), (n,) + tuple(shape))
  return np.random.default_rng([seed, 0x10C]).uniform(-1, 1, (n,) + tuple(shape))


@registry.register
class LocalisationEvaluator(Evaluator):
  """Yields loc/* for the model's loc_map and baseline/{centre,whole,random}/loc/*."""

  name = "localisation"
  mode = "positives"
  defaults = {"size": 224}  # maps are scored at size^2 (LVS / EZ-VSL: 224)
  lower_is_better = frozenset({"loc/distractor_pick"})

  def __init__(self, batches: BatchesFactory, size: int = 224, centre_sigma: float = 0.25,
               seed: int = 0, protocol: str = DEFAULT_PROTOCOL):
    super().__init__(batches)
    protocols.check_protocol(protocol)
    self.size, self.centre_sigma, self.seed = size, centre_sigma, seed
    self.protocol = protocol

  @classmethod
  def from_config(cls, block: Mapping[str, Any], context: EvalContext) -> LocalisationEvaluator:
    return cls(context.batches(cls.mode), seed=context.seed, protocol=context.loc_protocol,
               **block)

  @staticmethod
  def baseline(key: str) -> Optional[tuple[str, ...]]:
    if not key.startswith("loc/") or key == "loc/num_images":
      return None
    return tuple(f"baseline/{name}/{key}" for name in TRIVIAL_MAPS
                 if name != "whole" or key.split("/")[-1] not in _PEAKED)

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
    maps = scored_maps(collected)[known]
    clips = collected.get("clip_index", np.arange(len(known)))[known]
    targets = boxes[known]
    distractors = collected.get("distractor_boxes")
    distractors = (distractors[known] if distractors is not None
                   else -np.ones((len(maps), 1, 4), np.float32))
    gt = {k: collected[k][known] for k in ("gt_boxes", "gt_consensus") if k in collected}
    model = localisation_metrics(maps, targets, distractors, clips, self.protocol, self.size,
                                 **gt)
    yield from model.items()
    for name in TRIVIAL_MAPS:
      trivial = trivial_maps(name, len(maps), maps.shape[1:], self.size, self.seed,
                             self.centre_sigma)
      scores = localisation_metrics(trivial, targets, distractors, clips, self.protocol,
                                    self.size, peaked=name != "whole", **gt)
      for key, value in scores.items():
        yield f"baseline/{name}/{key}", value
    if "loc/distractor_pick" not in model:
      yield "note/localisation", "no image has a distractor box: distractor_pick not scored"
    yield "loc/num_images", float(len(maps))
    yield "note/loc_protocol", f"cIoU as the {self.protocol} script scores it"
