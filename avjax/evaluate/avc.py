"""AVC evaluator: audio-visual correspondence accuracy on balanced positive/negative pairs."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional

from avjax.evaluate import metrics, registry
from avjax.evaluate.common import Chance, EvalContext, Evaluator, Value
from avjax.evaluate.intervals import PerClip


@registry.register
class AvcEvaluator(Evaluator):
  """Yields `avc_accuracy`: (logit > 0) == label over the valid rows of the "pairs" batches."""

  name = "avc"
  mode = "pairs"
  # frames_per_clip: AVC pairs per clip: frames spread over its grid, each with its own sound
  # and another video's (more = less noise).
  defaults = {"frames_per_clip": 1}

  @classmethod
  def from_config(cls, block: Mapping[str, Any], context: EvalContext) -> AvcEvaluator:
    return cls(context.batches(cls.mode, frames_per_clip=block["frames_per_clip"]))

  @staticmethod
  def baseline(key: str) -> Optional[Chance]:
    # Half the pairs are positives: a constant answer scores 0.5.
    return Chance(0.5, "chance: balanced pairs") if key == "avc_accuracy" else None

  def evaluate(self, collected: dict) -> Iterator[tuple[str, Value]]:
    if "logit" not in collected or not len(collected["logit"]):
      yield "note/avc", "no valid pairs or no 'logit' output: AVC accuracy not computed"
      return
    yield "avc_accuracy", PerClip.mean(metrics.avc_hits(collected["logit"], collected["label"]),
                                       collected["clip_index"])


@registry.register
class AvcShortcutEvaluator(AvcEvaluator):
  """Yields `avc_accuracy/shortcut_pairs`: AVC accuracy on pairs built as [OtS]'s shortcut
  control trains (positives on the frame grid, negatives off it). Beside `avc_accuracy` it
  shows how much a net reads frame-alignment artefacts rather than content."""

  name = "avc_shortcut"
  mode = "shortcut_pairs"

  @staticmethod
  def baseline(key: str) -> Optional[Chance]:
    return (Chance(0.5, "chance: balanced pairs") if key == "avc_accuracy/shortcut_pairs"
            else None)

  def evaluate(self, collected: dict) -> Iterator[tuple[str, Value]]:
    for key, value in super().evaluate(collected):
      yield ("avc_accuracy/shortcut_pairs" if key == "avc_accuracy" else key), value
