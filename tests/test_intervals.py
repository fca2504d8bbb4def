"""Tests of the bootstrap over clips and of the gains over trivial baselines."""

import numpy as np
import pytest

from avjax.evaluate import intervals, metrics, protocols
from avjax.evaluate.common import Chance
from avjax.evaluate.intervals import PerClip


def _brute_force(m: PerClip, counts: np.ndarray) -> np.ndarray:
  """The metric on each draw by copying every drawn clip's rows (count times) and reducing."""
  out = []
  for draw in counts:
    rows = np.concatenate([m.terms[m.clips == c] for c in np.flatnonzero(draw)
                           for _ in range(int(draw[c]))])
    out.append(m.reduce(rows.mean(axis=0)))
  return np.array(out)


def test_resampled_means_equal_copying_the_drawn_clips():
  rng = np.random.default_rng(0)
  n_clips = 12
  clips = rng.integers(0, n_clips, 200)
  cious = rng.random(200)
  auc = PerClip(cious[:, None] >= metrics.AUC_THRESHOLDS[None], clips, metrics.auc_of_success)
  acc = PerClip.mean(rng.random(200) < 0.7, clips)
  draws = [rng.multinomial(n_clips, np.full(n_clips, 1 / n_clips), size=25).astype(float)]
  got = intervals.resample({"auc": auc, "acc": acc}, n_clips, draws=draws)
  np.testing.assert_allclose(got["auc"], _brute_force(auc, draws[0]), rtol=0, atol=1e-12)
  np.testing.assert_allclose(got["acc"], _brute_force(acc, draws[0]), rtol=0, atol=1e-12)
  # The point value is the same reduce over all rows: AUC as the published scripts compute it.
  assert auc.value() == pytest.approx(protocols.summary("ezvsl", cious)["auc"], abs=1e-12)


def test_interval_of_a_mean_matches_the_normal_approximation():
  rng = np.random.default_rng(1)
  hits = rng.random(2000) < 0.7
  m = PerClip.mean(hits, np.arange(2000))
  low, high = intervals.interval(intervals.resample({"a": m}, 2000, 2000, seed=3)["a"])
  se = np.sqrt(hits.mean() * (1 - hits.mean()) / 2000)
  assert low < hits.mean() < high
  assert high - low == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_rows_of_one_clip_move_together():
  # 10 clips of 76 identical frames each hold 10 samples' worth of evidence, not 760.
  rng = np.random.default_rng(2)
  per_clip = rng.random(10) < 0.6
  one_row = PerClip.mean(per_clip, np.arange(10))
  many_rows = PerClip.mean(np.repeat(per_clip, 76), np.repeat(np.arange(10), 76))
  a = intervals.resample({"m": one_row}, 10, 500, seed=0)["m"]
  b = intervals.resample({"m": many_rows}, 10, 500, seed=0)["m"]
  np.testing.assert_allclose(a, b, atol=1e-12)
  low, high = intervals.interval(b)
  assert high - low > 0.4  # 760 independent rows would give about 0.07


def test_scoring_counts_unscored_clips_and_pairs_the_gain():
  rng = np.random.default_rng(4)
  n = 50
  base = rng.random(n)
  values = {"m": PerClip.mean(base + 0.1, np.arange(n)),
            "b1": PerClip.mean(base, np.arange(n)),
            "b2": PerClip.mean(base - 0.3, np.arange(n)),
            "few": PerClip.mean(base[:40], np.arange(40))}
  floats = {k: v.value() for k, v in values.items()}
  ids = [f"clip{i}" for i in range(n)]
  out = intervals.scoring(values, floats, lambda k: ["b1", "b2"] if k == "m" else [], ids,
                          samples=400, seed=0)
  m = out["m"]
  assert m["gain_over"] == "b1" and m["gain"] == pytest.approx(0.1)
  # Paired draws: the gain is exactly 0.1 in every draw, though m itself varies widely.
  assert m["gain_ci95"] == pytest.approx([0.1, 0.1])
  assert m["ci95"][1] - m["ci95"][0] > 0.1
  assert (m["n_scored"], m["n_expected"]) == (50, 50) and "unscored_clips" not in m
  assert (out["few"]["n_scored"], out["few"]["n_expected"]) == (40, 50)
  assert out["few"]["unscored_clips"] == ids[40:]
  # Seeded: the same draws again.
  again = intervals.scoring(values, floats, lambda k: ["b1", "b2"] if k == "m" else [], ids,
                            samples=400, seed=0)
  assert again == out


def test_gain_over_a_chance_line_and_where_lower_is_better():
  hits = np.r_[np.ones(30), np.zeros(10)]
  values = {"acc": PerClip.mean(hits, np.arange(40)),
            "err": PerClip.mean(1 - hits, np.arange(40)),
            "err_base": PerClip.mean(np.full(40, 0.5), np.arange(40))}
  floats = {k: v.value() for k, v in values.items()}
  out = intervals.scoring(
      values, floats, lambda k: {"acc": [Chance(0.5, "chance")], "err": ["err_base"]}.get(k, []),
      [str(i) for i in range(40)], samples=300, seed=1, lower_is_better=lambda k: k == "err")
  assert out["acc"]["gain"] == pytest.approx(0.25) and out["acc"]["gain_over"] == "chance"
  np.testing.assert_allclose(np.array(out["acc"]["gain_ci95"]) + 0.5, out["acc"]["ci95"])
  # A lower error than the baseline's is a positive gain.
  assert out["err"]["gain"] == pytest.approx(0.25)
  assert out["err"]["gain_ci95"][0] > 0


def test_no_samples_no_interval():
  m = PerClip.mean([1.0, 0.0, np.nan], [0, 1, 2])
  assert m.value() == 0.5
  out = intervals.scoring({"m": m}, {"m": 0.5}, lambda k: [], ["a", "b", "c"], samples=0)
  assert out == {"m": {"n_scored": 2, "n_expected": 3, "unscored_clips": ["c"]}}


def test_a_statistic_of_row_weights_is_resampled_by_clip():
  # The largest value among the drawn rows: not a mean, so given as a statistic of weights.
  values = np.array([0.1, 0.9, 0.5, 0.3])
  clips = np.array([0, 1, 1, 2])
  def largest(weights):
    return values.max() if weights is None else values[weights > 0].max()
  top = intervals.ByRowWeights(largest, clips)
  assert top.value() == 0.9
  draws = [np.array([[3.0, 0, 0], [0, 1, 2], [1, 0, 2]])]
  got = intervals.resample({"top": top}, 3, draws=draws)["top"]
  np.testing.assert_array_equal(got, [0.1, 0.9, 0.3])
