"""L3-Net's cross-modal retrieval, as [OtS] Table 1 reports it: raw and after CCA.

L3-Net has no joint space, so [OtS] gives it two rows: "L3-Net", the two towers' pooled
features compared directly (im-aud .418, aud-im .385, at chance .407), and "L3-Net + CCA",
the same features after a canonical correlation analysis fitted on training features
(.578 / .531 / .560 / .649 in im-im / im-aud / aud-im / aud-aud). This evaluator computes both
on the eval split's "positives" database, the CCA fitted on the training split's positives
(one pass of the net over them, before scoring): `raw_ndcg{k}/im-aud`, `raw_ndcg{k}/aud-im`,
`cca_ndcg{k}/<direction>` for the four directions, against `cca_ndcg{k}/random`.

The CCA is the closed form: each side centred and whitened with its ridge-regularised
covariance (`reg` times the mean variance added to the diagonal, as pool4 features after a
ReLU have dead channels), then the SVD of the whitened cross-covariance; items are ranked by
cosine similarity of their projections on the leading `components` canonical directions,
each direction weighted by its canonical correlation (whitened projections would give a
direction correlated by chance as much weight as the shared ones).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

from avjax.evaluate import metrics, registry
from avjax.evaluate.common import BatchesFactory, EvalContext, Evaluator, Value
from avjax.evaluate.intervals import PerClip
from avjax.evaluate.retrieval import DIRECTIONS, RetrievalEvaluator, query_ndcg


def _inverse_sqrt(cov: np.ndarray) -> np.ndarray:
  values, vectors = np.linalg.eigh(cov)
  return (vectors / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T


class Cca:
  """Canonical correlation analysis of paired rows x [N, dx] and y [N, dy]; `transform_*`
  give the canonical variates scaled by their correlations."""

  def __init__(self, x: np.ndarray, y: np.ndarray, components: int = 0, reg: float = 1e-3):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    if n < 3:
      raise ValueError(f"CCA needs at least 3 paired rows, got {n}")
    self.mean_x, self.mean_y = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - self.mean_x, y - self.mean_y
    cxx, cyy, cxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    cxx += reg * max(np.trace(cxx) / len(cxx), 1e-12) * np.eye(len(cxx))
    cyy += reg * max(np.trace(cyy) / len(cyy), 1e-12) * np.eye(len(cyy))
    wx, wy = _inverse_sqrt(cxx), _inverse_sqrt(cyy)
    u, s, vt = np.linalg.svd(wx @ cxy @ wy)
    k = min(components or len(s), len(s), n - 1)
    self.correlations = s[:k]
    self.a, self.b = wx @ u[:, :k] * s[:k], wy @ vt[:k].T * s[:k]

  def transform_x(self, x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, np.float64) - self.mean_x) @ self.a

  def transform_y(self, y: np.ndarray) -> np.ndarray:
    return (np.asarray(y, np.float64) - self.mean_y) @ self.b


@registry.register
class CcaRetrievalEvaluator(RetrievalEvaluator):
  """Yields raw_ndcg{k}/im-aud, raw_ndcg{k}/aud-im, cca_ndcg{k}/<4 directions> and
  cca_ndcg{k}/random, for any net (meant for L3-Net: [OtS] Table 1's two L3 rows)."""

  name = "cca_retrieval"
  mode = "positives"
  # components: canonical directions kept (0: all); reg: the ridge on each covariance, in
  # units of its mean variance; fit_split / fit_clips: the features the CCA is fitted on.
  defaults = {"k": 30, "components": 0, "reg": 1e-3, "fit_split": "train", "fit_clips": 2048}

  def __init__(self, batches: BatchesFactory, fit: BatchesFactory, clips: Optional[Sequence],
               classes: Sequence[str], ontology: Optional[Mapping[str, dict]] = None,
               k: int = 30, components: int = 0, reg: float = 1e-3):
    super().__init__(batches, clips, classes, ontology, k=k)
    self.fit_batches = fit
    self.components, self.reg = components, reg
    self.cca: Optional[Cca] = None

  @classmethod
  def from_config(cls, block: Mapping[str, Any], context: EvalContext) -> CcaRetrievalEvaluator:
    block = dict(block)
    fit = context.batches(cls.mode, split=block.pop("fit_split"),
                          max_clips=block.pop("fit_clips"))
    return cls(context.batches(cls.mode), fit, context.clips, context.classes,
               context.ontology, **block)

  @staticmethod
  def baseline(key: str) -> Optional[str]:
    prefix = key.split("/")[0]
    if prefix.startswith(("raw_ndcg", "cca_ndcg")) and not key.endswith("/random"):
      return "cca_" + prefix.split("_", 1)[1] + "/random"
    return None

  def fit(self, collected: dict) -> None:
    """Fits the CCA on the pooled features of the fitting split's positives."""
    self.cca = Cca(collected["image_features"], collected["audio_features"], self.components,
                   self.reg)

  def evaluate(self, collected: dict) -> Iterator[tuple[str, Value]]:
    n = len(collected.get("clip_index", ()))
    if n < 2 or self.cca is None:
      yield "note/cca_retrieval", f"{n} valid item(s) and a CCA fitted: {self.cca is not None}"
      return
    relevance = self.relevance(collected)
    clips = collected["clip_index"]
    raw = {"image": collected["image_features"], "audio": collected["audio_features"]}
    if raw["image"].shape[1] == raw["audio"].shape[1]:  # only then are raw distances defined
      for name, query, database in DIRECTIONS[1:3]:
        ndcg = query_ndcg(raw[query], raw[database], relevance, self.k, **self.knn_kwargs)
        yield f"raw_ndcg{self.k}/{name}", PerClip.mean(ndcg, clips)
    projected = {"image": self.cca.transform_x(raw["image"]).astype(np.float32),
                 "audio": self.cca.transform_y(raw["audio"]).astype(np.float32)}
    for name, query, database in DIRECTIONS:
      ndcg = query_ndcg(projected[query], projected[database], relevance, self.k,
                        **self.knn_kwargs)
      yield f"cca_ndcg{self.k}/{name}", PerClip.mean(ndcg, clips)
    random = metrics.random_ndcg_at_k(np.arange(n), relevance, self.k)
    yield f"cca_ndcg{self.k}/random", PerClip.mean(random, clips)
    yield "cca/num_components", float(len(self.cca.correlations))
