"""AVC evaluator: audio-visual correspondence accuracy on balanced positive/negative pairs."""

from __future__ import annotations

from typing import Iterator

from avjax.evaluate import metrics
from avjax.evaluate.common import Evaluator, Value


class AvcEvaluator(Evaluator):
  """Yields `avc_accuracy`: (logit > 0) == label over the valid rows of the "pairs" batches."""

  name = "avc"
  mode = "pairs"

  def evaluate(self, collected: dict) -> Iterator[tuple[str, Value]]:
    if "logit" not in collected or not len(collected["logit"]):
      yield "note/avc", "no valid pairs or no 'logit' output: AVC accuracy not computed"
      return
    yield "avc_accuracy", metrics.avc_accuracy(collected["logit"], collected["label"])
