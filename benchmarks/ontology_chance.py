"""The random-chance nDCG@30 of [OtS] retrieval under the AudioSet ontology's relevance.

  python -m benchmarks.ontology_chance --ontology ontology.json \
      [--segments eval_segments.csv] [--under "Musical instrument"] [--labels all|under]

[OtS] Table 1 gives .407 as random chance on AudioSet-Instruments, with relevance r = 20 - d
and d the path length between labels. This prints avjax's exact expected nDCG@30 of a random
ranking (metrics.random_ndcg_at_k) for both of its distances ("graph", "tree"; see
avjax.evaluate.ontology), so that the figure can be checked against the paper's.

Items: with --segments, the clips of an AudioSet segment CSV that carry at least one label
under --under (all of their labels, or with --labels under only those under it); without it,
--items items with one label each, drawn uniformly from the classes under --under.
"""

import argparse
import sys

import numpy as np

from avjax.evaluate import metrics
from avjax.evaluate.ontology import DISTANCES, ontology_relevance, resolve_label
from data_pipeline.formats import audioset, common


def _descendants(ontology: dict, root: str) -> set[str]:
  out, stack = set(), [root]
  while stack:
    for child in ontology.get(stack.pop(), {}).get("child_ids", ()):
      if child not in out:
        out.add(child)
        stack.append(child)
  return out


def _segment_labels(path: str) -> list[list[str]]:
  """The label ids of each row of an AudioSet segment CSV."""
  return [audioset.row_labels(row) for row in common.read_csv_rows(path, skip_comments=True)
          if len(row) >= 4]


def chance_items(ontology: dict, under: str, segments: str = "", labels: str = "all",
                 items: int = 2000, seed: int = 0) -> list[list[str]]:
  """The label sets of the items whose random-chance nDCG is asked for (see the module doc)."""
  root = resolve_label(under, ontology)
  if root is None:
    raise SystemExit(f"error: {under!r} is neither an id nor a name in the ontology")
  classes = _descendants(ontology, root) | {root}
  if not segments:
    pool = sorted(classes)
    rng = np.random.default_rng(seed)
    return [[pool[i]] for i in rng.integers(len(pool), size=items)]
  rows = [r for r in _segment_labels(segments) if classes & set(r)]
  if not rows:
    raise SystemExit(f"error: no row of {segments} has a label under {under!r}")
  return [[m for m in r if m in classes] for r in rows] if labels == "under" else rows


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--ontology", required=True, help="AudioSet's ontology.json")
  parser.add_argument("--segments", default="", help="an AudioSet segment CSV")
  parser.add_argument("--under", default="Musical instrument",
                      help="the subset: items with a label under this node (id or name)")
  parser.add_argument("--labels", choices=("all", "under"), default="all")
  parser.add_argument("--items", type=int, default=2000)
  parser.add_argument("--k", type=int, default=30)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  try:
    ontology = audioset.load_ontology(args.ontology)
  except (OSError, ValueError, KeyError, TypeError) as e:
    sys.exit(f"error: cannot read the ontology {args.ontology}: {e}")
  label_sets = chance_items(ontology, args.under, args.segments, args.labels, args.items,
                            args.seed)
  queries = np.arange(len(label_sets))
  print(f"{len(label_sets)} items with a label under {args.under!r}"
        + (f" from {args.segments}" if args.segments else " (one uniform label each)"))
  for distance in DISTANCES:
    relevance = ontology_relevance(label_sets, ontology, distance=distance)
    chance = metrics.random_ndcg_at_k(queries, relevance, args.k).mean()
    print(f"random-chance nDCG@{args.k} ({distance} distance, r = 20 - d): {chance:.3f}")


if __name__ == "__main__":
  main()
