"""Relevance between database items for retrieval: flat class labels or the AudioSet ontology.

Items carry label sets (AudioSet clips may have several labels). Relevance is defined between
labels and lifted to items as the maximum over their label pairs. Items with the same label set
share one row of a [U, U] matrix, U = the number of distinct label sets (the number of classes
for single-label data), so relevance never needs an [N, N] matrix.
"""

from __future__ import annotations

import dataclasses
from typing import Hashable, Mapping, Optional, Sequence

import numpy as np

# [OtS]: relevance r = 20 - d, d the ontology distance between two labels.
MAX_RELEVANCE = 20.0


@dataclasses.dataclass(frozen=True)
class Relevance:
  """Relevance of database items to each other, through their label sets.

  Attributes:
    set_ids: int [N], index of each item's label set.
    matrix: float32 [U, U], relevance between label sets (0 for an empty set).
  """
  set_ids: np.ndarray
  matrix: np.ndarray

  @property
  def num_items(self) -> int:
    return len(self.set_ids)

  def between(self, queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """rel(queries[q], items[q, j]) for queries [Q] and items [Q, k]; -1 items give 0."""
    items = np.asarray(items)
    rel = self.matrix[self.set_ids[queries][:, None], self.set_ids[np.maximum(items, 0)]]
    return np.where(items < 0, 0.0, rel).astype(np.float32)


def _label_sets(item_labels: Sequence[Sequence[Hashable]]):
  """Distinct label sets, and each item's index into them."""
  index: dict[frozenset, int] = {}
  set_ids = np.empty(len(item_labels), np.int64)
  for i, labels in enumerate(item_labels):
    set_ids[i] = index.setdefault(frozenset(labels), len(index))
  return set_ids, list(index)


def _lift(sets: list[frozenset], label_relevance) -> np.ndarray:
  """[U, U] relevance of label sets: the max of label_relevance(a, b) over their label pairs."""
  labels = sorted({label for s in sets for label in s}, key=str)
  pos = {label: i for i, label in enumerate(labels)}
  # Class-level relevance, plus a zero row/column that pads short label sets.
  rel = np.zeros((len(labels) + 1, len(labels) + 1), np.float32)
  for a in labels:
    for b in labels:
      rel[pos[a], pos[b]] = label_relevance(a, b)
  width = max([len(s) for s in sets] + [1])
  padded = np.full((len(sets), width), len(labels), np.int64)
  for u, s in enumerate(sets):
    padded[u, :len(s)] = [pos[label] for label in s]
  # Best relevance of each set to each class, then the best over the other set's classes.
  to_class = rel[padded].max(axis=1)                                  # [U, C+1]
  out = np.zeros((len(sets), len(sets)), np.float32)
  for start in range(0, len(sets), 1024):
    block = to_class[start:start + 1024]                              # [b, C+1]
    out[start:start + 1024] = block[:, padded].max(axis=-1)           # [b, U]
  return out


def flat_relevance(item_labels: Sequence[Sequence[Hashable]]) -> Relevance:
  """r = 1 when two items share a label, else 0 (unlabelled items are relevant to nothing)."""
  set_ids, sets = _label_sets(item_labels)
  return Relevance(set_ids, _lift(sets, lambda a, b: float(a == b)))


def ontology_graph(ontology: Mapping[str, dict]) -> dict[str, set[str]]:
  """Undirected adjacency over the ontology's parent/child_ids edges, keyed by node id."""
  graph: dict[str, set[str]] = {}
  for node_id, node in ontology.items():
    graph.setdefault(node_id, set())
    for child in node.get("child_ids", ()):
      graph[node_id].add(child)
      graph.setdefault(child, set()).add(node_id)
  return graph


def parents_of(ontology: Mapping[str, dict]) -> dict[str, set[str]]:
  """Each node's parents over the child_ids edges (AudioSet nodes may have several)."""
  parents: dict[str, set[str]] = {node_id: set() for node_id in ontology}
  for node_id, node in ontology.items():
    for child in node.get("child_ids", ()):
      parents.setdefault(child, set()).add(node_id)
  return parents


def _distances_from(graph: dict[str, set[str]], source: str) -> dict[str, int]:
  """Breadth-first shortest-path lengths from source."""
  dist, frontier = {source: 0}, [source]
  while frontier:
    nxt = []
    for node in frontier:
      for other in graph.get(node, ()):
        if other not in dist:
          dist[other] = dist[node] + 1
          nxt.append(other)
    frontier = nxt
  return dist


def resolve_label(label: str, ontology: Mapping[str, dict],
                  by_name: Optional[dict[str, str]] = None) -> Optional[str]:
  """The ontology id of a label given as an id or a display name; None when unknown."""
  if label in ontology:
    return label
  if by_name is None:
    by_name = {node.get("name", k): k for k, node in ontology.items()}
  return by_name.get(label)


DISTANCES = ("graph", "tree")


def ontology_relevance(item_labels: Sequence[Sequence[str]], ontology: Mapping[str, dict],
                       max_relevance: float = MAX_RELEVANCE, distance: str = "graph"
                       ) -> Relevance:
  """[OtS] relevance r = max(0, 20 - d) between two labels; an item pair takes the max over
  its label pairs. Labels may be ontology ids or display names; a label missing from the
  ontology is relevant (r = 20) only to itself; labels with no path get r = 0.

  distance "graph": d is the shortest path in the ontology taken as an undirected graph over
  its parent/child_ids edges. Such a path may pass DOWN through a shared child (AudioSet nodes
  have several parents), which links nodes of different top-level trees.
  distance "tree": d is the shortest path through a common ancestor, min over ancestors c of
  up(a, c) + up(b, c), up counting parent steps (the tree distance through the lowest common
  ancestor); labels of different top-level trees are unrelated (r = 0).
  """
  if distance not in DISTANCES:
    raise ValueError(f"unknown ontology distance {distance!r}; known: {', '.join(DISTANCES)}")
  graph = ontology_graph(ontology) if distance == "graph" else parents_of(ontology)
  by_name = {node.get("name", k): k for k, node in ontology.items()}
  set_ids, sets = _label_sets(item_labels)
  cache: dict[str, dict[str, int]] = {}

  def label_relevance(a: str, b: str) -> float:
    if a == b:
      return max_relevance
    ia, ib = resolve_label(a, ontology, by_name), resolve_label(b, ontology, by_name)
    if ia is None or ib is None:
      return 0.0
    for node in (ia, ib):
      if node not in cache:
        cache[node] = _distances_from(graph, node)  # "tree": up-distances to the ancestors
    if distance == "graph":
      d = cache[ia].get(ib)
    else:
      common = cache[ia].keys() & cache[ib].keys()
      d = min((cache[ia][c] + cache[ib][c] for c in common), default=None)
    return 0.0 if d is None else max(0.0, max_relevance - d)

  return Relevance(set_ids, _lift(sets, label_relevance))
