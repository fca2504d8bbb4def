"""Retrieval evaluator: mean nDCG@k over the database, each item a query against all others.

The database is the "positives" batches: one item per clip = one frame + its centred 1 s audio.
Rankings use cosine similarity (dot products of L2-normalised vectors; for AVE-Net's normalised
embeddings this is the same order as its Euclidean distance). Relevance comes from the clips'
labels: the AudioSet ontology ([OtS] r = 20 - d) when one is given, else flat labels (1 for a
shared class). The mean is over queries with at least one relevant item; each query is a clip,
so the bootstrap interval resamples queries.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

from avjax.evaluate import knn, metrics, registry
from avjax.evaluate.common import BatchesFactory, EvalContext, Evaluator, Value
from avjax.evaluate.intervals import PerClip
from avjax.errors import ConfigError
from avjax.evaluate.ontology import DISTANCES, Relevance, flat_relevance, ontology_relevance

DIRECTIONS = (("im-im", "image", "image"), ("im-aud", "image", "audio"),
              ("aud-im", "audio", "image"), ("aud-aud", "audio", "audio"))


def item_labels(collected: dict, clips: Optional[Sequence], classes: Sequence[str]) -> list:
  """Each row's labels: its clip's labels when clips are given, else its class_id's name."""
  if clips is not None and "clip_index" in collected:
    return [tuple(clips[i].labels) if i >= 0 else () for i in collected["clip_index"]]
  return [(classes[c],) if c >= 0 else () for c in collected["class_id"]]


def query_ndcg(queries_x: np.ndarray, database_x: np.ndarray, relevance: Relevance,
               k: int, **knn_kwargs) -> np.ndarray:
  """nDCG@k [N] of item i's query vector against the database vectors of all items j != i
  (NaN for a query without a relevant item)."""
  n = len(database_x)
  _, idx = knn.top_k_neighbours(knn.l2_normalise(queries_x), knn.l2_normalise(database_x),
                                min(k, max(n - 1, 1)), query_ids=np.arange(n), **knn_kwargs)
  return metrics.ndcg_at_k(idx, np.arange(n), relevance, k)


@registry.register
class RetrievalEvaluator(Evaluator):
  """Yields ndcg{k}/im-im, im-aud, aud-im, aud-aud and ndcg{k}/random (exact expectation)."""

  name = "retrieval"
  mode = "positives"
  # k: [OtS] reports nDCG@30; the chunks bound the similarity blocks held at once; distance:
  # the ontology path length d (ontology.ontology_relevance: "graph" or "tree").
  defaults = {"k": 30, "query_chunk": 512, "db_chunk": 4096, "distance": "graph"}

  def __init__(self, batches: BatchesFactory, clips: Optional[Sequence], classes: Sequence[str],
               ontology: Optional[Mapping[str, dict]] = None, k: int = 30,
               query_chunk: int = 512, db_chunk: int = 4096, distance: str = "graph"):
    super().__init__(batches)
    if distance not in DISTANCES:
      raise ConfigError(f"eval.retrieval.distance must be one of {', '.join(DISTANCES)}, "
                        f"got {distance!r}")
    self.clips, self.classes, self.ontology, self.k = clips, list(classes), ontology, k
    self.distance = distance
    self.knn_kwargs = dict(query_chunk=query_chunk, db_chunk=db_chunk)

  @classmethod
  def from_config(cls, block: Mapping[str, Any],
                  context: EvalContext) -> RetrievalEvaluator:
    return cls(context.batches(cls.mode), context.clips, context.classes, context.ontology,
               **block)

  @staticmethod
  def baseline(key: str) -> Optional[str]:
    prefix = key.split("/")[0]
    if prefix.startswith("ndcg") and not key.endswith("/random"):
      return prefix + "/random"
    return None

  def relevance(self, collected: dict) -> Relevance:
    labels = item_labels(collected, self.clips, self.classes)
    if self.ontology:
      return ontology_relevance(labels, self.ontology, distance=self.distance)
    return flat_relevance(labels)

  def evaluate(self, collected: dict) -> Iterator[tuple[str, Value]]:
    prefix = f"ndcg{self.k}"
    n = len(collected.get("clip_index", collected.get("class_id", ())))
    if n < 2:
      yield "note/retrieval", f"{n} valid item(s): retrieval needs at least 2"
      return
    relevance = self.relevance(collected)
    random = metrics.random_ndcg_at_k(np.arange(n), relevance, self.k)
    if np.all(np.isnan(random)):
      yield "note/retrieval", "no item has a relevant item in the database (labels missing?)"
      return
    if "image_embedding" in collected and "audio_embedding" in collected:
      vectors = {"image": collected["image_embedding"], "audio": collected["audio_embedding"]}
      directions = DIRECTIONS
    else:
      # L3-Net: the towers' features live in different spaces; only same-modality retrieval.
      vectors = {"image": collected["image_features"], "audio": collected["audio_features"]}
      directions = (DIRECTIONS[0], DIRECTIONS[3])
      yield ("note/retrieval", "no joint embedding: im-im and aud-aud use the pooled tower "
             "features; the cca_retrieval evaluator gives [OtS]'s raw and CCA cross-modal rows")
    clips = collected.get("clip_index", np.arange(n))
    for name, query, database in directions:
      ndcg = query_ndcg(vectors[query], vectors[database], relevance, self.k, **self.knn_kwargs)
      yield f"{prefix}/{name}", PerClip.mean(ndcg, clips)
    yield f"{prefix}/random", PerClip.mean(random, clips)
