"""The quick probe: class accuracy of a linear classifier on frozen pool4 features of the eval
split, a health check of the towers during training. It is NOT L3's published probe (ESC-50
79.3%: conv4_2 pooled to 4 x 3, a linear SVM on official folds): that is --mode=probe
(avjax.train.linear_probe); do not compare these figures with the paper's.

Features (audio_features, image_features) are standardised and fed to a logistic regression;
accuracy is pooled over k-fold cross-validation grouped by clip (as ESC-50's folds keep a
recording's pieces together), so each row is predicted once by a model that never saw its clip.
The folds are StratifiedGroupKFold (shuffled with a fixed seed): grouped like GroupKFold, but
with every class spread over the folds (plain GroupKFold can put a whole class in one fold).
`quick_probe/chance` is the majority-class rate of the rows scored (always predicting the most
frequent class).
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator, Mapping, Optional

import numpy as np
from sklearn import linear_model, model_selection, pipeline, preprocessing

from avjax.evaluate import registry
from avjax.evaluate.common import BatchesFactory, EvalContext, Evaluator, Value
from avjax.evaluate.intervals import PerClip


def probe_hits(features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
               folds: int = 5, c: float = 1.0, seed: int = 0,
               max_iter: int = 1000) -> Optional[np.ndarray]:
  """Whether each row is predicted right (bool [N]) by a standardised logistic regression that
  never saw its group, over grouped, stratified k folds (their mean is the pooled accuracy);
  None when there are fewer than 2 classes or 2 groups."""
  n_groups = len(np.unique(groups))
  # sklearn refuses more folds than the largest class has members (small test splits).
  folds = min(folds, n_groups, int(np.bincount(labels).max()) if len(labels) else 0)
  if folds < 2 or len(np.unique(labels)) < 2:
    return None
  hits = np.zeros(len(labels), bool)
  splitter = model_selection.StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
  with warnings.catch_warnings():
    # Classes rarer than the fold count are expected on small eval sets.
    warnings.simplefilter("ignore", UserWarning)
    splits = list(splitter.split(features, labels, groups))
  for train, test in splits:
    if len(np.unique(labels[train])) < 2:
      # One class to learn from: the classifier can only predict it.
      hits[test] = labels[test] == labels[train][0]
      continue
    clf = pipeline.make_pipeline(preprocessing.StandardScaler(),
                                 linear_model.LogisticRegression(C=c, max_iter=max_iter))
    clf.fit(features[train], labels[train])
    hits[test] = clf.predict(features[test]) == labels[test]
  return hits


def majority_hits(labels: np.ndarray) -> np.ndarray:
  """Whether always predicting the most frequent class is right, per row (bool [N])."""
  return labels == np.argmax(np.bincount(labels))


@registry.register
class QuickProbeEvaluator(Evaluator):
  """Yields quick_probe/audio_accuracy, quick_probe/image_accuracy and quick_probe/chance
  (majority class)."""

  name = "quick_probe"
  mode = "positives"
  # folds: StratifiedGroupKFold folds, grouped by clip; c: the logistic regression's inverse
  # L2 strength.
  defaults = {"folds": 5, "c": 1.0}

  def __init__(self, batches: BatchesFactory, folds: int = 5, c: float = 1.0, seed: int = 0):
    super().__init__(batches)
    self.folds, self.c, self.seed = folds, c, seed

  @classmethod
  def from_config(cls, block: Mapping[str, Any], context: EvalContext) -> QuickProbeEvaluator:
    return cls(context.batches(cls.mode), seed=context.seed, **block)

  @staticmethod
  def baseline(key: str) -> Optional[str]:
    return ("quick_probe/chance"
            if key.startswith("quick_probe/") and key != "quick_probe/chance" else None)

  def evaluate(self, collected: dict) -> Iterator[tuple[str, Value]]:
    labels = collected.get("class_id", np.zeros(0, np.int32))
    keep = labels >= 0
    labels = labels[keep]
    groups = collected.get("clip_index", np.arange(len(keep)))[keep]
    scored = False
    for modality in ("audio", "image"):
      features = collected.get(f"{modality}_features")
      if features is None or not len(labels):  # no output, or no labelled clip (Flickr-SoundNet)
        continue
      hits = probe_hits(features[keep].reshape(len(labels), -1), labels, groups,
                        self.folds, self.c, self.seed)
      if hits is not None:
        scored = True
        yield f"quick_probe/{modality}_accuracy", PerClip.mean(hits, groups)
    if scored:
      yield "quick_probe/chance", PerClip.mean(majority_hits(labels), groups)
    else:
      yield ("note/quick_probe", f"quick probe needs features, 2+ classes and 2+ clips; got "
             f"{len(np.unique(labels))} class(es) over {len(np.unique(groups))} clip(s)")
