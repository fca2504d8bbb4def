"""Exact top-k neighbours by dot product, chunked on device with a running top-k.

Queries are taken `query_chunk` at a time; for each chunk a jitted `lax.scan` walks the database
`db_chunk` items at a time and merges each chunk's scores into the running best k with
`lax.top_k`. Memory is O(query_chunk * db_chunk + N * k), never O(N^2). Ties keep the lower
database index first, as a stable sort would.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from jax import lax


@functools.partial(jax.jit, static_argnames=("k",))
def _chunk_top_k(queries, query_ids, db, db_ids, k):
  """Best k of db [C, dc, D] for queries [qc, D]; db_ids -1 = padding; query_ids = own item."""
  qc = queries.shape[0]

  def merge(carry, chunk):
    best_s, best_i = carry
    items, ids = chunk
    s = jnp.dot(queries, items.T, precision=lax.Precision.HIGHEST)
    drop = (ids[None, :] < 0) | (ids[None, :] == query_ids[:, None])
    s = jnp.where(drop, -jnp.inf, s)
    # The running best come first so that ties keep the earlier (lower) index.
    all_s = jnp.concatenate([best_s, s], axis=1)
    all_i = jnp.concatenate([best_i, jnp.broadcast_to(ids[None, :], s.shape)], axis=1)
    top_s, pos = lax.top_k(all_s, k)
    return (top_s, jnp.take_along_axis(all_i, pos, axis=1)), None

  init = (jnp.full((qc, k), -jnp.inf, queries.dtype), jnp.full((qc, k), -1, jnp.int32))
  (scores, idx), _ = lax.scan(merge, init, (db, db_ids))
  return scores, jnp.where(jnp.isneginf(scores), -1, idx)


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
  out = np.zeros((rows,) + x.shape[1:], x.dtype)
  out[:len(x)] = x
  return out


def top_k_neighbours(queries: np.ndarray, database: np.ndarray, k: int, *,
                     query_ids: Optional[np.ndarray] = None, query_chunk: int = 512,
                     db_chunk: int = 4096, progress: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Top-k database items by dot product for every query.

  Args:
    queries: float [Q, D].
    database: float [N, D].
    k: neighbours per query.
    query_ids: int [Q], the database index each query must not retrieve (its own item), or -1;
      None excludes nothing.
    query_chunk: queries per device call.
    db_chunk: database items per scan step.
    progress: show a progress bar over query chunks.

  Returns:
    (scores float32 [Q, k], indices int32 [Q, k]) best first; index -1 (score -inf) where fewer
    than k items are left.
  """
  queries = np.asarray(queries, np.float32)
  database = np.asarray(database, np.float32)
  n_q, n = len(queries), len(database)
  if query_ids is None:
    query_ids = np.full(n_q, -1)
  db_chunk = max(min(db_chunk, n), 1)
  n_chunks = -(-n // db_chunk)
  db = jnp.asarray(_pad_rows(database, n_chunks * db_chunk).reshape(n_chunks, db_chunk, -1))
  ids = np.full(n_chunks * db_chunk, -1, np.int32)
  ids[:n] = np.arange(n)
  db_ids = jnp.asarray(ids.reshape(n_chunks, db_chunk))

  query_chunk = max(min(query_chunk, n_q), 1)
  scores = np.empty((n_q, k), np.float32)
  indices = np.empty((n_q, k), np.int32)
  starts = range(0, n_q, query_chunk)
  for s in tqdm.tqdm(starts, desc="retrieval", leave=False, disable=not progress):
    q = _pad_rows(queries[s:s + query_chunk], query_chunk)
    qid = np.full(query_chunk, -1, np.int32)
    qid[:min(query_chunk, n_q - s)] = query_ids[s:s + query_chunk]
    out_s, out_i = _chunk_top_k(q, qid, db, db_ids, k=k)
    rows = min(query_chunk, n_q - s)
    scores[s:s + rows] = np.asarray(out_s)[:rows]
    indices[s:s + rows] = np.asarray(out_i)[:rows]
  return scores, indices


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
  """Rows scaled to unit length (dot product = cosine similarity)."""
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)
