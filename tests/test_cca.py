"""L3-Net's retrieval rows of [OtS] Table 1: the closed-form CCA against scikit-learn's, and
the evaluator on features whose answer is known."""

import numpy as np
from sklearn import cross_decomposition

from avjax.evaluate.cca import Cca, CcaRetrievalEvaluator


def _paired(n, rng, dims=6, signal=3):
  """Two views sharing `signal` latent dimensions through different random mixings."""
  z = rng.normal(size=(n, signal))
  x = np.concatenate([z, rng.normal(size=(n, dims - signal))], 1) @ rng.normal(size=(dims, dims))
  y = np.concatenate([z, rng.normal(size=(n, dims - signal))], 1) @ rng.normal(size=(dims, dims))
  return x + 0.1 * rng.normal(size=x.shape), y + 0.1 * rng.normal(size=y.shape)


def test_canonical_correlations_match_scikit_learn():
  rng = np.random.default_rng(0)
  x, y = _paired(400, rng)
  ours = Cca(x, y, components=3, reg=1e-8)
  ref = cross_decomposition.CCA(n_components=3, max_iter=5000, tol=1e-10).fit(x, y)
  ref_x, ref_y = ref.transform(x, y)
  for c in range(3):
    ref_corr = abs(np.corrcoef(ref_x[:, c], ref_y[:, c])[0, 1])
    our_corr = np.corrcoef(ours.transform_x(x)[:, c], ours.transform_y(y)[:, c])[0, 1]
    assert abs(our_corr - ours.correlations[c]) < 1e-6
    assert abs(our_corr - ref_corr) < 1e-4, (c, our_corr, ref_corr)
  assert ours.correlations[0] > 0.95 and ours.correlations[2] > 0.9


def _collected(rng, n_per_class=10, classes=5, dims=16):
  labels = np.repeat(np.arange(classes), n_per_class)
  centres = CENTRES[:classes, :dims]
  # The two towers see the class through unrelated linear maps: raw features do not align.
  image = (centres[labels] + rng.normal(size=(len(labels), dims))) @ MIX_IMAGE
  audio = (centres[labels] + rng.normal(size=(len(labels), dims))) @ MIX_AUDIO
  return {"image_features": image.astype(np.float32), "audio_features": audio.astype(np.float32),
          "class_id": labels.astype(np.int32), "clip_index": np.arange(len(labels))}


CENTRES = 3 * np.random.default_rng(6).normal(size=(5, 16))  # the classes, in both splits
MIX_IMAGE = np.random.default_rng(7).normal(size=(16, 16))
MIX_AUDIO = np.random.default_rng(8).normal(size=(16, 16))


def test_cca_aligns_towers_that_raw_features_do_not():
  rng = np.random.default_rng(1)
  classes = [f"c{i}" for i in range(5)]
  ev = CcaRetrievalEvaluator(None, None, None, classes, k=10)
  ev.fit(_collected(rng, n_per_class=40))
  results = {k: v.value() if hasattr(v, "value") else v
             for k, v in ev.evaluate(_collected(rng))}
  random = results["cca_ndcg10/random"]
  assert 0.1 < random < 0.35
  for direction in ("im-im", "im-aud", "aud-im", "aud-aud"):
    assert results[f"cca_ndcg10/{direction}"] > 0.9, direction
  assert results["raw_ndcg10/im-aud"] < random + 0.15
  assert results["raw_ndcg10/aud-im"] < random + 0.15
  assert CcaRetrievalEvaluator.baseline("raw_ndcg10/im-aud") == "cca_ndcg10/random"
  assert CcaRetrievalEvaluator.baseline("cca_ndcg10/im-im") == "cca_ndcg10/random"
  assert CcaRetrievalEvaluator.baseline("ndcg10/im-im") is None
