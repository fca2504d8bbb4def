"""Benchmark: exact nDCG@30 retrieval over many random items, time and peak memory.

  python -m benchmarks.retrieval [--items 100000] [--dim 128] [--classes 100]

Random unit vectors with random flat labels; every item is a query against all others.
Peak memory is the process's maximum resident set size (resource.getrusage ru_maxrss).
"""

import argparse
import resource
import sys
import time

import jax
import numpy as np

from avjax.evaluate import knn, metrics
from avjax.evaluate.ontology import flat_relevance


def _maxrss_mib() -> float:
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--items", type=int, default=100_000)
  parser.add_argument("--dim", type=int, default=128)
  parser.add_argument("--classes", type=int, default=100)
  parser.add_argument("--k", type=int, default=30)
  parser.add_argument("--query-chunk", type=int, default=512)
  parser.add_argument("--db-chunk", type=int, default=4096)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)

  rng = np.random.default_rng(args.seed)
  x = knn.l2_normalise(rng.standard_normal((args.items, args.dim), dtype=np.float32))
  labels = rng.integers(0, args.classes, args.items)
  base_rss = _maxrss_mib()
  print(f"{args.items} items x {args.dim}-d, {args.classes} classes, k={args.k}, "
        f"device {jax.devices()[0].platform}; peak RSS before: {base_rss:.0f} MiB")

  t0 = time.perf_counter()
  _, idx = knn.top_k_neighbours(x, x, args.k, query_ids=np.arange(args.items),
                                query_chunk=args.query_chunk, db_chunk=args.db_chunk,
                                progress=True)
  t1 = time.perf_counter()
  relevance = flat_relevance([(int(c),) for c in labels])
  queries = np.arange(args.items)
  ndcg = np.nanmean(metrics.ndcg_at_k(idx, queries, relevance, args.k))
  random = np.nanmean(metrics.random_ndcg_at_k(queries, relevance, args.k))
  t2 = time.perf_counter()
  print(f"top-{args.k} search (incl. compile): {t1 - t0:.1f} s; nDCG: {t2 - t1:.2f} s; "
        f"total {t2 - t0:.1f} s")
  print(f"nDCG@{args.k} = {ndcg:.4f} (random data; expected under random ranking {random:.4f})")
  print(f"peak RSS: {_maxrss_mib():.0f} MiB (an N x N float32 matrix would be "
        f"{args.items ** 2 * 4 / 2**30:.1f} GiB)")


if __name__ == "__main__":
  main()
