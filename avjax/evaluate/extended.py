"""Extended-benchmark evaluator: localisation when the sound does not come from the image.

Reads the "extended" eval batches: each test frame with its own sound, another video's (the
AVC negative), silence and white noise (`data_pipeline.pairs.AUDIO_KINDS`).

Extended benchmark (Mo & Morgado, NeurIPS 2022; SLAVC's EvaluatorFull, see
`extended_metrics`): every frame with a box is scored with its own sound (a sounding pair)
and with another video's (a non-sounding pair, empty ground truth). A pair's confidence is
the mean of the top quarter of its upsampled map; a sounding pair is a true positive when it
is detected with cIoU >= 0.5 (cIoU as eval.loc_protocol). Yields ext/ap (SLAVC's AP), ext/
max_f1 (SLAVC's coarse grid of about ten confidence thresholds), ext/max_f1_dense (every
confidence a threshold), ext/precision (cIoU >= 0.5 among the sounding pairs) and ext/auc
(over the sounding pairs). Their trivial baselines are the centre and random maps scored the
same way (a map that ignores the sound gives a frame the same confidence with any sound).
The non-sounding pairs are drawn with the eval seed, or read from a published pair list
(`eval.extended.pairs`: Extended Flickr's or Extended VGG-SS's CSV, see
`data_pipeline.pair_lists`); then only the frames the list names have one.

Negative audio (Juanola et al., ICASSP 2025; see `extended_metrics.negative_audio_metrics`):
per kind of negative sound (other, silence, noise), neg/<kind>/pia is the mean fraction of the
frame above a threshold set from the positive maps (the median of their maxima) and
neg/<kind>/iou the mean IoU of a frame's positive and negative masks; lower is better for
both. neg/<kind>/pia_aoc is vssl_eval's area over the curve of per-image pIA (the share of
frames with pIA <= t, integrated over t = 0..1; higher is better). A net deaf to the sound
would score pia = neg/pia_positive and pia_aoc = neg/pia_positive_aoc (the same with the
right sound) and IoU = 1: those are their baselines.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Union

import numpy as np

from avjax.evaluate import extended_metrics, metrics, protocols, registry
from avjax.evaluate.common import BatchesFactory, Chance, EvalContext, Evaluator, Value
from avjax.evaluate.intervals import ByRowWeights, PerClip
from avjax.evaluate.localisation import DEFAULT_PROTOCOL, scored_maps, trivial_maps
from data_pipeline.pairs import AUDIO_KINDS

NEGATIVE_KINDS = ("other", "silence", "noise")
EXT_METRICS = {"ap": "ap", "max_f1": "max_f1", "max_f1_dense": "max_f1_dense",
               "precision": "precision_visible", "auc": "auc_visible"}
_BASELINE_MAPS = ("centre", "random")


def _statistics(scorer: extended_metrics.ExtendedScorer):
  """statistic(key) -> weights -> scorer(weights)[key]. The bootstrap asks every key of the
  same draws in turn (a chunk of up to 100 draws): each draw's metrics are computed once."""
  seen: dict = {}

  def statistic(key: str):
    def value(weights):
      tag = None if weights is None else np.asarray(weights).tobytes()
      if tag not in seen:
        if len(seen) >= 256:
          seen.clear()
        seen[tag] = scorer(weights)
      return seen[tag][key]
    return value
  return statistic


def extended_pairs(protocol: str, own: np.ndarray, other: np.ndarray, boxes: np.ndarray,
                   consensus: np.ndarray, clips: np.ndarray, size: int = 224
                   ) -> dict[str, ByRowWeights]:
  """ext/* of sounding pairs (maps own [B, h, w] with their boxes [B, K, 4] and consensus [B])
  and non-sounding pairs (maps other [B, h', w'], empty ground truth), each frame's clip in
  clips [B]: statistics of row weights, for the bootstrap over clips."""
  no_box = -np.ones_like(boxes)
  cious = np.concatenate([protocols.ciou_per_image(protocol, own, boxes, consensus, size),
                          protocols.ciou_per_image(protocol, other, no_box, consensus, size)])
  conf = np.concatenate([extended_metrics.confidence(protocol, own, size),
                         extended_metrics.confidence(protocol, other, size)])
  sounding = np.r_[np.ones(len(own), bool), np.zeros(len(other), bool)]
  statistic = _statistics(extended_metrics.ExtendedScorer(cious, conf, sounding))
  rows_clips = np.concatenate([clips, clips])
  return {f"ext/{name}": ByRowWeights(statistic(key), rows_clips)
          for name, key in EXT_METRICS.items()}


def _pia_aoc(pia: np.ndarray, clips: np.ndarray) -> PerClip:
  """extended_metrics.pia_aoc as a per-clip metric (the bootstrap redraws the clips)."""
  return PerClip(pia[:, None] <= metrics.AUC_THRESHOLDS[None], clips, metrics.auc_of_success)


@registry.register
class ExtendedEvaluator(Evaluator):
  """Yields ext/* (sounding vs non-sounding pairs) and neg/* (negative audio) for loc maps."""

  name = "extended"
  mode = "extended"
  defaults = {"size": 224, "pairs": ""}  # pairs: a published pair list (CSV), "" = seeded
  lower_is_better = frozenset(f"neg/{kind}/{m}" for kind in NEGATIVE_KINDS
                              for m in ("pia", "iou"))

  def __init__(self, batches: BatchesFactory, size: int = 224, seed: int = 0,
               protocol: str = DEFAULT_PROTOCOL):
    super().__init__(batches)
    protocols.check_protocol(protocol)
    self.size, self.seed, self.protocol = size, seed, protocol

  @classmethod
  def from_config(cls, block: Mapping[str, Any], context: EvalContext) -> ExtendedEvaluator:
    block = dict(block)
    pair_list = block.pop("pairs", "")
    options = {"pair_list": pair_list} if pair_list else {}
    return cls(context.batches(cls.mode, **options), seed=context.seed,
               protocol=context.loc_protocol, **block)

  @staticmethod
  def baseline(key: str) -> Optional[Union[str, Chance, tuple[str, ...]]]:
    if key.startswith("ext/"):
      return tuple(f"baseline/{name}/{key}" for name in _BASELINE_MAPS)
    if key.startswith("neg/") and key.endswith("/pia"):
      return "neg/pia_positive"
    if key.startswith("neg/") and key.endswith("/pia_aoc"):
      return "neg/pia_positive_aoc"
    if key.startswith("neg/") and key.endswith("/iou"):
      return Chance(1.0, "a map deaf to the sound")
    return None

  def _by_kind(self, collected: dict) -> dict[str, dict[int, int]]:
    """Row index of each clip's row per kind of sound."""
    out = {kind: {} for kind in AUDIO_KINDS}
    for row, (clip, kind) in enumerate(zip(collected["clip_index"], collected["audio_kind"])):
      out[AUDIO_KINDS[int(kind)]][int(clip)] = row
    return out

  def evaluate(self, collected: dict) -> Iterator[tuple[str, Value]]:
    if "loc_map" not in collected:
      yield "note/extended", "the model gives no localisation map (only AVOL-Net does)"
      return
    maps = scored_maps(collected)
    rows = self._by_kind(collected)
    own = rows["own"]
    # Extended benchmark: the frames with a box and both of their pairs.
    boxes = collected["target_box"]
    framed = [c for c in own if c in rows["other"] and np.all(boxes[own[c]] >= 0)]
    if framed:
      pos = np.array([own[c] for c in framed])
      neg = np.array([rows["other"][c] for c in framed])
      clips = np.array(framed)
      gt = collected.get("gt_boxes", boxes[:, None])[pos]
      consensus = collected.get("gt_consensus", np.ones(len(boxes), np.int64))[pos]
      yield from extended_pairs(self.protocol, maps[pos], maps[neg], gt, consensus, clips,
                                self.size).items()
      for name in _BASELINE_MAPS:
        # A map that ignores the sound is the same for both pairs of a frame.
        trivial = trivial_maps(name, len(pos), maps.shape[1:], self.size, self.seed)
        for key, value in extended_pairs(self.protocol, trivial, trivial, gt, consensus,
                                         clips, self.size).items():
          yield f"baseline/{name}/{key}", value
    else:
      yield "note/extended", "no frame with a box has both of its pairs: ext/* not scored"
    # Negative audio: every frame with its own sound and each negative sound.
    for kind in NEGATIVE_KINDS:
      both = [c for c in own if c in rows[kind]]
      if not both:
        continue
      pos = np.array([own[c] for c in both])
      out = extended_metrics.negative_audio_metrics(
          self.protocol, maps[pos], maps[np.array([rows[kind][c] for c in both])], self.size)
      yield f"neg/{kind}/pia", PerClip.mean(out["pia_negative"], np.array(both))
      yield f"neg/{kind}/pia_aoc", _pia_aoc(out["pia_negative"], np.array(both))
      yield f"neg/{kind}/iou", PerClip.mean(out["iou"], np.array(both))
      if kind == "other":
        yield "neg/pia_positive", PerClip.mean(out["pia_positive"], np.array(both))
        yield "neg/pia_positive_aoc", _pia_aoc(out["pia_positive"], np.array(both))
        yield "neg/threshold", float(out["threshold"])
