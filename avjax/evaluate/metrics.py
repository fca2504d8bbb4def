"""Pure metric functions (numpy): AVC accuracy, nDCG@k retrieval, cIoU/AUC localisation, pointing.

Retrieval: every database item is a query against all OTHER items (the query is excluded from
both the ranking and the ideal ranking). DCG uses the linear gain of [OtS]:
DCG@k = sum_{i=1..k} rel_i / log2(i + 1), nDCG@k = DCG@k / IDCG@k, with IDCG@k the DCG of the
ideal order of the same database without the query (sklearn's `ndcg_score` uses the same gain).

Localisation: the success AUC is the trapezoidal area (np.trapz, sklearn.metrics.auc) under
success(t) = the fraction of images with cIoU >= t over the 21 thresholds 0.05 * i; how a map
becomes a cIoU is the named protocol's (avjax.evaluate.protocols). Pointing: the map's first
maximal cell lies in the sounding object's box.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from avjax.evaluate.ontology import Relevance

# The published scripts' [0.05 * i for i in range(21)] (not linspace: 0.05 * 3 != 0.15).
AUC_THRESHOLDS = 0.05 * np.arange(21)


def avc_hits(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """bool [N]: (logit > 0) == (label == 1), i.e. p = sigmoid(logit) > 0.5 is the right call."""
  return (np.asarray(logits).reshape(-1) > 0) == (np.asarray(labels).reshape(-1) == 1)


def avc_accuracy(logits: np.ndarray, labels: np.ndarray,
                 valid: Optional[np.ndarray] = None) -> float:
  """Fraction of valid rows that `avc_hits`."""
  hits = avc_hits(logits, labels)
  keep = np.ones(len(hits), bool) if valid is None else np.asarray(valid, bool).reshape(-1)
  if not keep.any():
    return float("nan")
  return float(np.mean(hits[keep]))


# ----------------------------------------------------------------------------- retrieval

def dcg_discounts(k: int) -> np.ndarray:
  """1 / log2(i + 1) for ranks i = 1..k."""
  return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _other_counts(relevance: Relevance) -> np.ndarray:
  return np.bincount(relevance.set_ids, minlength=len(relevance.matrix))


def ideal_dcg(queries: np.ndarray, relevance: Relevance, k: int) -> np.ndarray:
  """IDCG@k of each query: its best k relevances among the other database items."""
  queries = np.asarray(queries)
  counts = _other_counts(relevance)
  disc = dcg_discounts(k)
  by_set = {}
  for s in np.unique(relevance.set_ids[queries]):
    row = relevance.matrix[s].astype(np.float64)
    n = counts.copy()
    n[s] -= 1  # the query itself is not in its own database
    order = np.argsort(-row, kind="stable")
    best = np.repeat(row[order], np.minimum(n[order], k))[:k]
    by_set[s] = float(best @ disc[:len(best)])
  return np.array([by_set[s] for s in relevance.set_ids[queries]], np.float64)


def ndcg_at_k(retrieved: np.ndarray, queries: np.ndarray, relevance: Relevance,
              k: int = 30) -> np.ndarray:
  """Per-query nDCG@k.

  Args:
    retrieved: int [Q, >=k], database indices in ranked order (-1 = nothing, gain 0); must not
      contain the query itself.
    queries: int [Q], the database index of each query's own item.
    relevance: relevance between database items.
    k: cut-off.

  Returns:
    float [Q]; NaN where the query has no relevant item in the database (IDCG = 0).
  """
  retrieved, queries = np.asarray(retrieved)[:, :k], np.asarray(queries)
  if np.any(retrieved == queries[:, None]):
    raise ValueError("a query retrieved itself; queries must be excluded from their ranking")
  rel = relevance.between(queries, retrieved).astype(np.float64)
  dcg = rel @ dcg_discounts(k)[:rel.shape[1]]
  idcg = ideal_dcg(queries, relevance, k)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(idcg > 0, dcg / idcg, np.nan)


def random_ndcg_at_k(queries: np.ndarray, relevance: Relevance, k: int = 30) -> np.ndarray:
  """Per-query EXPECTED nDCG@k under a uniformly random ranking of the other items (exact).

  Every rank holds a uniformly drawn other item, so E[DCG@k] = mean relevance of the others
  * sum of the first min(k, N-1) discounts; IDCG is fixed. NaN where IDCG = 0.
  """
  queries = np.asarray(queries)
  counts = _other_counts(relevance).astype(np.float64)
  sets = relevance.set_ids[queries]
  others = relevance.num_items - 1
  total = relevance.matrix.astype(np.float64) @ counts                 # [U]
  mean_rel = (total[sets] - np.diag(relevance.matrix)[sets]) / max(others, 1)
  expected = mean_rel * dcg_discounts(k)[:min(k, others)].sum()
  idcg = ideal_dcg(queries, relevance, k)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(idcg > 0, expected / idcg, np.nan)


# ----------------------------------------------------------------------------- localisation
# cIoU itself is computed as a published script computes it: avjax.evaluate.protocols.

def minmax_normalise(maps: np.ndarray) -> np.ndarray:
  """Per-image (m - min) / (max - min); constant maps become 0."""
  lo = maps.min(axis=(1, 2), keepdims=True)
  span = maps.max(axis=(1, 2), keepdims=True) - lo
  return np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1), 0.0)


def auc_of_success(success: np.ndarray, thresholds: np.ndarray = AUC_THRESHOLDS) -> np.ndarray:
  """Trapezoidal area (as np.trapz) under success rates [..., len(thresholds)]: [...]."""
  return np.sum((success[..., 1:] + success[..., :-1]) / 2 * np.diff(thresholds), axis=-1)


def peak_points(maps: np.ndarray) -> np.ndarray:
  """[B, h, w] -> [B, 2] normalised (x, y) of each map's first maximal cell centre."""
  b, h, w = maps.shape
  flat = np.argmax(np.asarray(maps).reshape(b, -1), axis=1)
  rows, cols = np.divmod(flat, w)
  return np.stack([(cols + 0.5) / w, (rows + 0.5) / h], axis=1)


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
  """points [B, 2], boxes [B, ..., 4] -> bool [B, ...]; boxes with a negative coordinate miss."""
  p = np.asarray(points).reshape((len(points),) + (1,) * (np.ndim(boxes) - 2) + (2,))
  boxes = np.asarray(boxes)
  known = np.all(boxes >= 0, axis=-1)
  inside = ((p[..., 0] >= boxes[..., 0]) & (p[..., 0] <= boxes[..., 2])
            & (p[..., 1] >= boxes[..., 1]) & (p[..., 1] <= boxes[..., 3]))
  return known & inside


def pointing_hits(maps: np.ndarray, target_boxes: np.ndarray) -> np.ndarray:
  """bool [B]: the map's peak falls inside the sounding object's box."""
  return points_in_boxes(peak_points(maps), target_boxes)


def distractor_picks(maps: np.ndarray, target_boxes: np.ndarray,
                     distractor_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(picked, has_distractor), bool [B] each: picked = the peak is inside some distractor's box
  and not inside the target box; has_distractor = the image has at least one known distractor box.
  """
  points = peak_points(maps)
  in_distractor = points_in_boxes(points, distractor_boxes).any(axis=1)
  picked = in_distractor & ~points_in_boxes(points, target_boxes)
  return picked, np.all(np.asarray(distractor_boxes) >= 0, axis=-1).any(axis=1)


def centre_prior_maps(n: int, h: int, w: int, sigma: float = 0.25) -> np.ndarray:
  """[n, h, w] centred Gaussian maps (sigma in units of the image side): the centre baseline."""
  y = (np.arange(h) + 0.5) / h - 0.5
  x = (np.arange(w) + 0.5) / w - 0.5
  g = np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma ** 2))
  return np.broadcast_to(g, (n, h, w)).copy()
