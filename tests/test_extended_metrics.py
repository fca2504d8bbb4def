"""Extended-benchmark and negative-audio metrics (avjax.evaluate.extended_metrics) against references.

The references follow the published scripts one pair or one image at a time:
  * SLAVC (stoneMo/SLAVC utils.py EvaluatorFull: calc_precision_recall, calc_ap, cal_auc,
    filter_subset, finalize_stats; test.py validate() for the confidence), run on the rows
    repeated as many times as their weight, in shuffled order.
  * vssl_eval (xavijuanola/vssl_eval utils_dir/eval_utils.py: compute_pIA, compute_IOU_maps,
    compute_AUC_pIA) for the negative-audio masks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skmetrics

from avjax.evaluate import extended_metrics as extended
from avjax.evaluate import protocols

N_SETS = 500
SCALARS = ("ap", "max_f1", "max_f1_dense", "precision_all", "precision_visible", "ap_visible",
           "max_f1_visible", "max_f1_dense_visible", "auc_visible", "num_pairs", "num_visible")
ARRAYS = ("f1_grid", "f1_thresholds")


# ----------------------------------------------------------------------------- SLAVC reference

def ref_precision_recall(bbs, cious, confs, conf_thr, ciou_thr):
  """One pass over the pairs: bb == 0 and detected is FP; bb > 0 is TP / FP / FN."""
  tp = fp = fn = 0
  for bb, ciou, conf in zip(bbs, cious, confs):
    detected = conf >= conf_thr
    if bb == 0:
      if detected:
        fp += 1
    elif detected:
      if ciou >= ciou_thr:
        tp += 1
      else:
        fp += 1
    else:
      fn += 1
  precision = 1.0 if tp + fp == 0 else tp / (tp + fp)
  recall = 1.0 if tp + fn == 0 else tp / (tp + fn)
  return precision, recall


def ref_ap(bbs, cious, confs, ciou_thr):
  """Thresholds: the sorted confidences without the largest, from the top, every s-th."""
  step = max(1, len(cious) // 200)
  ascending = sorted(confs)
  thresholds = []
  i = len(ascending) - 2
  while i >= 0:
    thresholds.append(ascending[i])
    i -= step
  curve = [ref_precision_recall(bbs, cious, confs, t, ciou_thr) for t in thresholds]
  total = 0.0
  for i in range(len(curve) - 1):
    best = max(p for p, _ in curve[i:])
    total += best * (curve[i + 1][1] - curve[i][1])
  return total


def ref_f1(p, r):
  return 2 * r * p / (r + p) if r + p > 0 else 0.0


def ref_subset(bbs, cious, confs, ciou_thr):
  """finalize_stats for one subset, plus the dense max-F1 (every distinct confidence)."""
  nan = float("nan")
  if not cious:
    return {"precision": nan, "ap": nan, "f1": [], "f1_thr": [], "max_f1": nan,
            "max_f1_dense": nan}
  precision, _ = ref_precision_recall(bbs, cious, confs, -1000, ciou_thr)
  step = max(1, len(confs) // 10)
  f1_thr = sorted(confs)[::step]
  f1 = [ref_f1(*ref_precision_recall(bbs, cious, confs, t, ciou_thr)) for t in f1_thr]
  dense = [ref_f1(*ref_precision_recall(bbs, cious, confs, t, ciou_thr)) for t in set(confs)]
  return {"precision": precision, "ap": ref_ap(bbs, cious, confs, ciou_thr), "f1": f1,
          "f1_thr": f1_thr, "max_f1": max(f1), "max_f1_dense": max(dense)}


def ref_auc(bbs, cious):
  """cal_auc: the visible pairs' success rates at 0.05 * i and sklearn's trapezoid."""
  visible = [c for bb, c in zip(bbs, cious) if bb > 0]
  if not visible:
    return float("nan")
  rates = [sum(1 for c in visible if c >= 0.05 * i) / len(visible) for i in range(21)]
  return skmetrics.auc([0.05 * i for i in range(21)], rates)


def slavc_reference(cious, confs, bbs, ciou_thr=0.5):
  """Every metric of `extended_metrics`, from plain lists of the repeated pairs."""
  every = ref_subset(bbs, cious, confs, ciou_thr)
  keep = [i for i, bb in enumerate(bbs) if bb > 0]
  vis = ref_subset([bbs[i] for i in keep], [cious[i] for i in keep], [confs[i] for i in keep],
                   ciou_thr)
  return {"ap": every["ap"], "max_f1": every["max_f1"], "max_f1_dense": every["max_f1_dense"],
          "f1_grid": every["f1"], "f1_thresholds": every["f1_thr"],
          "precision_all": every["precision"], "precision_visible": vis["precision"],
          "ap_visible": vis["ap"], "max_f1_visible": vis["max_f1"],
          "max_f1_dense_visible": vis["max_f1_dense"], "auc_visible": ref_auc(bbs, cious),
          "num_pairs": len(cious), "num_visible": len(keep)}


def repeated(rng, cious, confs, sounding, weights):
  """The rows repeated weights[i] times, shuffled (the scripts shuffle; order is irrelevant),
  as lists; bb = 1 for a sounding pair, 0 otherwise."""
  idx = np.repeat(np.arange(len(cious)), weights)
  idx = idx[rng.permutation(len(idx))]
  return ([float(cious[i]) for i in idx], [float(confs[i]) for i in idx],
          [int(sounding[i]) for i in idx])


def random_set(rng, large=False):
  """Pairs with ties in confidence, NaN / boundary cIoUs and varied sounding fractions."""
  n = int(rng.integers(420, 600)) if large else int(rng.integers(1, 40))
  kind = rng.integers(0, 4)
  if kind == 0:
    confs = rng.random(n)
  elif kind == 1:
    confs = rng.integers(0, 5, n) / 4  # heavy ties
  elif kind == 2:
    confs = np.full(n, 0.5)  # one confidence
  else:
    confs = np.round(rng.random(n), 2)
  cious = rng.random(n)
  special = rng.random(n)
  cious[special < 0.1] = 0.5
  cious[(special >= 0.1) & (special < 0.15)] = np.nan
  cious[(special >= 0.15) & (special < 0.2)] = 0.0
  cious[(special >= 0.2) & (special < 0.25)] = 0.75
  p_sounding = rng.choice([0.0, 0.3, 0.7, 1.0])
  sounding = rng.random(n) < p_sounding
  if rng.random() < 0.1:
    cious[:] = rng.choice([0.0, 1.0])  # no TP / every sounding pair a hit
  weights = rng.integers(1 if large else 0, 4, n)  # large: M >= 420, AP steps of 2 or more
  if not large and rng.random() < 0.2:
    weights[:] = 1
  return cious, confs, sounding, weights


def assert_metrics_close(got, want, atol=1e-9):
  for key in SCALARS:
    if isinstance(want[key], float) and math.isnan(want[key]):
      assert math.isnan(got[key]), (key, got[key])
    else:
      assert got[key] == pytest.approx(want[key], abs=atol), key
  for key in ARRAYS:
    np.testing.assert_allclose(np.asarray(got[key], np.float64),
                               np.asarray(want[key], np.float64), atol=atol, err_msg=key)


def assert_metrics_identical(a, b):
  for key in SCALARS:
    assert (a[key] == b[key]) or (math.isnan(a[key]) and math.isnan(b[key])), key
  for key in ARRAYS:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ----------------------------------------------------------------------------- extended tests

def test_matches_reference_on_random_sets():
  rng = np.random.default_rng(20221128)
  for t in range(N_SETS):
    cious, confs, sounding, weights = random_set(rng, large=t < 4)
    ref_rows = repeated(rng, cious, confs, sounding, weights)
    want = slavc_reference(*ref_rows)
    got = extended.extended_metrics(cious, confs, sounding, weights)
    assert_metrics_close(got, want)
    # The library on the repeated rows themselves (weights 1).
    flat = extended.extended_metrics(np.array(ref_rows[0]), np.array(ref_rows[1]),
                                     np.array(ref_rows[2], bool))
    assert_metrics_identical(got, flat)


def test_iou_threshold_075():
  rng = np.random.default_rng(75)
  for _ in range(40):
    cious, confs, sounding, weights = random_set(rng)
    want = slavc_reference(*repeated(rng, cious, confs, sounding, weights), ciou_thr=0.75)
    got = extended.extended_metrics(cious, confs, sounding, weights, iou_threshold=0.75)
    assert_metrics_close(got, want)


def test_weights_equal_repetition_exactly():
  rng = np.random.default_rng(7)
  n = 3000
  cious = rng.random(n)
  cious[rng.random(n) < 0.05] = np.nan
  confs = np.round(rng.random(n), 3)  # ties
  sounding = rng.random(n) < 0.5
  scorer = extended.ExtendedScorer(cious, confs, sounding)
  for _ in range(3):
    weights = np.bincount(rng.integers(0, n, n), minlength=n)  # a bootstrap resample
    idx = np.repeat(np.arange(n), weights)
    flat = extended.extended_metrics(cious[idx], confs[idx], sounding[idx])
    assert_metrics_identical(scorer(weights), flat)
    assert_metrics_identical(extended.extended_metrics(cious, confs, sounding, weights), flat)
  # Float, integer and boolean multiplicities agree; weight 0 drops a row.
  w = rng.integers(0, 2, n)
  assert_metrics_identical(scorer(w.astype(np.float64)), scorer(w.astype(bool)))
  keep = w > 0
  assert_metrics_identical(scorer(w), extended.extended_metrics(cious[keep], confs[keep],
                                                                sounding[keep]))


def test_hand_worked_tiny_case():
  # conf 0.9 0.8 0.7 0.6 0.5; sounding T F T T F; hits (cIoU >= 0.5): 0.9 and 0.6.
  cious = np.array([0.62, np.nan, 0.43, 0.71, 0.0])
  confs = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
  sounding = np.array([True, False, True, True, False])
  got = extended.extended_metrics(cious, confs, sounding)
  # AP thresholds 0.8, 0.7, 0.6, 0.5: (p, r) = (1/2, 1/3), (1/3, 1/2), (1/2, 1), (2/5, 1);
  # running max of p from the right 1/2, 1/2, 1/2, 2/5; AP = 1/2 (1/6) + 1/2 (1/2) + 0 = 1/3.
  assert got["ap"] == pytest.approx(1 / 3)
  # F1 at every confidence (M // 10 = 0 -> step 1), lowest first: 4/7, 2/3, 2/5, 2/5, 1/2.
  np.testing.assert_allclose(got["f1_grid"], [4 / 7, 2 / 3, 2 / 5, 2 / 5, 1 / 2])
  np.testing.assert_allclose(got["f1_thresholds"], [0.5, 0.6, 0.7, 0.8, 0.9])
  assert got["max_f1"] == pytest.approx(2 / 3)
  assert got["max_f1_dense"] == pytest.approx(2 / 3)
  assert got["precision_all"] == pytest.approx(2 / 5)
  assert got["precision_visible"] == pytest.approx(2 / 3)
  # Visible pairs (0.9 hit, 0.7 miss, 0.6 hit): thresholds 0.7, 0.6: (1/2, 1/2), (2/3, 1).
  assert got["ap_visible"] == pytest.approx(1 / 3)
  assert got["max_f1_visible"] == pytest.approx(4 / 5)
  # Success 1 at 0.05 i <= 0.43 (9 values), 2/3 up to 0.62 (4), 1/3 up to 0.71 (2), then 0.
  assert got["auc_visible"] == pytest.approx(71 / 120)
  assert (got["num_pairs"], got["num_visible"]) == (5, 3)
  # Counting the second pair three times: its confidence 0.8 now repeats.
  tripled = extended.extended_metrics(cious, confs, sounding, [1, 3, 1, 1, 1])
  assert tripled["precision_all"] == pytest.approx(2 / 7)
  assert tripled["num_pairs"] == 7


def test_edge_cases():
  nan_keys = ("ap", "max_f1", "max_f1_dense", "precision_all", "precision_visible",
              "auc_visible", "ap_visible")
  empty = extended.extended_metrics([0.5, 0.7], [0.1, 0.2], [True, False], [0, 0])
  assert all(math.isnan(empty[k]) for k in nan_keys) and empty["num_pairs"] == 0
  assert len(empty["f1_grid"]) == 0
  # No sounding pair: visible metrics are NaN; every detection is a FP.
  silent = extended.extended_metrics([np.nan, 0.0], [0.3, 0.4], [False, False])
  assert math.isnan(silent["precision_visible"]) and math.isnan(silent["auc_visible"])
  assert silent["precision_all"] == 0.0 and silent["max_f1"] == 0.0
  # One pair: AP has no interval (0, as SLAVC's empty sum).
  one = extended.extended_metrics([0.9], [0.3], [True])
  assert one["ap"] == 0.0 and one["max_f1"] == 1.0 and one["precision_visible"] == 1.0
  # Box counts are accepted as the sounding flags.
  counts = extended.extended_metrics([0.9, 0.2, 0.6], [0.3, 0.2, 0.1], [2, 0, 1])
  flags = extended.extended_metrics([0.9, 0.2, 0.6], [0.3, 0.2, 0.1], [True, False, True])
  assert_metrics_identical(counts, flags)
  with pytest.raises(ValueError, match="integers"):
    extended.extended_metrics([0.5], [0.5], [True], [0.5])
  with pytest.raises(ValueError, match="non-negative"):
    extended.extended_metrics([0.5], [0.5], [True], [-1])
  with pytest.raises(ValueError, match="NaN"):
    extended.extended_metrics([0.5], [np.nan], [True])
  with pytest.raises(ValueError, match="weights"):
    extended.extended_metrics([0.5, 0.5], [0.5, 0.1], [True, True], [1])


# ----------------------------------------------------------------------------- confidence

def test_confidence_matches_slavc_validate():
  rng = np.random.default_rng(3)
  tau = 0.03
  maps = rng.uniform(-1, 1, (6, 7, 7)) / tau
  got = extended.confidence("slavc", maps, tau=tau)
  up = protocols.upsample("slavc", maps, 224)
  for i in range(len(maps)):
    scores = (up[i] - (-1 / tau)) / (1 / tau - (-1 / tau))
    n = scores.size
    assert got[i] == pytest.approx(np.sort(scores.flatten())[-n // 4:].mean(), abs=1e-12)
  for protocol in ("lvs", "ezvsl"):
    raw = protocols.upsample(protocol, maps, 224).reshape(len(maps), -1)
    want = [np.sort(r)[-raw.shape[1] // 4:].mean() for r in raw]
    np.testing.assert_allclose(extended.confidence(protocol, maps, chunk=4), want, atol=1e-12)


def test_confidence_hand_worked():
  grid = np.arange(1.0, 10.0).reshape(1, 3, 3)  # size 3: resizing is the identity
  for protocol in ("lvs", "ezvsl"):
    # n = 9: the top ceil(9 / 4) = 3 values 7, 8, 9 (np.sort(v)[-9 // 4:]).
    assert extended.confidence(protocol, grid, size=3)[0] == pytest.approx(8.0)
  # slavc, tau = 0.5: (v + 2) / 4 of the top three, mean 10 / 4.
  assert extended.confidence("slavc", grid, size=3, tau=0.5)[0] == pytest.approx(2.5)
  # A constant map c / tau has confidence (c + 1) / 2.
  flat = np.full((2, 7, 7), 0.4 / 0.03)
  np.testing.assert_allclose(extended.confidence("slavc", flat), 0.7, atol=1e-12)


def test_confidence_order_is_what_counts():
  """AP and max-F1 need only the confidences' order: raw and fixed-normalised agree."""
  rng = np.random.default_rng(11)
  tau = 0.03
  maps = rng.uniform(-1, 1, (40, 7, 7)) / tau
  cious = rng.random(40)
  sounding = rng.random(40) < 0.5
  a = extended.extended_metrics(cious, extended.confidence("slavc", maps, tau=tau), sounding)
  b = extended.extended_metrics(cious, extended.confidence("slavc", maps * 2, tau=2 * tau),
                                sounding)
  for key in ("ap", "max_f1", "max_f1_dense", "ap_visible"):
    assert a[key] == pytest.approx(b[key], abs=1e-12)


# ----------------------------------------------------------------------------- negative audio

POSITIVE = np.array([[[0.9, 0.1], [0.2, 0.3]],
                     [[0.5, 0.6], [0.1, 0.0]],
                     [[0.2, 0.4], [0.4, 0.1]]])
NEGATIVE = np.array([[[0.7, 0.65], [0.0, 0.0]],
                     [[0.0, 0.0], [0.0, 0.61]],
                     [[0.0, 0.0], [0.0, 0.0]]])


@pytest.mark.parametrize("protocol", protocols.PROTOCOLS)
def test_negative_audio_hand_worked(protocol):
  # size 2 = the maps' side: each protocol's resizing is the identity.
  got = extended.negative_audio_metrics(protocol, POSITIVE, NEGATIVE, size=2)
  assert got["threshold"] == pytest.approx(0.6)  # median of the maxima 0.9, 0.6, 0.4
  # Strict >: image 1's maximum 0.6 is not above it.
  np.testing.assert_allclose(got["pia_positive"], [0.25, 0.0, 0.0])
  np.testing.assert_allclose(got["pia_negative"], [0.5, 0.25, 0.0])
  # IoU: {(0,0)} vs {(0,0),(0,1)} = 1/2; empty vs one pixel = 0; both empty = 1.
  np.testing.assert_allclose(got["iou"], [0.5, 0.0, 1.0])
  np.testing.assert_allclose(got["max_positive"], [0.9, 0.6, 0.4])
  np.testing.assert_allclose(got["max_negative"], [0.7, 0.61, 0.0])
  # Upper quartile of 0.4, 0.6, 0.9 (linear): 0.75. Only 0.9 is above it; the negative is empty.
  q3 = extended.negative_audio_metrics(protocol, POSITIVE, NEGATIVE, size=2, quantile=0.75)
  assert q3["threshold"] == pytest.approx(0.75)
  np.testing.assert_allclose(q3["pia_negative"], [0.0, 0.0, 0.0])
  np.testing.assert_allclose(q3["iou"], [0.0, 1.0, 1.0])
  # 1.1 x median = 0.66: image 0's masks are both {(0,0)}; images 1 and 2 have none.
  scaled = extended.negative_audio_metrics(protocol, POSITIVE, NEGATIVE, size=2, scale=1.1)
  assert scaled["threshold"] == pytest.approx(0.66)
  np.testing.assert_allclose(scaled["pia_negative"], [0.25, 0.0, 0.0])
  np.testing.assert_allclose(scaled["iou"], [1.0, 1.0, 1.0])
  fixed = extended.negative_audio_metrics(protocol, POSITIVE, NEGATIVE, size=2, threshold=0.0)
  np.testing.assert_allclose(fixed["pia_positive"], [1.0, 0.75, 1.0])
  np.testing.assert_allclose(fixed["pia_negative"], [0.5, 0.25, 0.0])


def ref_iou(a, b):
  """compute_IOU_maps: 0 if only b is empty, 1 if both are, else |a & b| / |a | b|."""
  if b.sum() == 0 and a.sum() > 0:
    return 0.0
  if a.sum() == 0 and b.sum() == 0:
    return 1.0
  return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


@pytest.mark.parametrize("protocol", protocols.PROTOCOLS)
@pytest.mark.parametrize("maxima", ["raw", "upsampled"])
def test_negative_audio_matches_reference(protocol, maxima):
  rng = np.random.default_rng(5)
  pos = rng.normal(size=(12, 7, 7))
  neg = rng.normal(size=(12, 7, 7)) - rng.uniform(0, 2, (12, 1, 1))
  neg[3] = -5.0  # an empty negative mask
  got = extended.negative_audio_metrics(protocol, pos, neg, size=32, maxima=maxima, chunk=5)
  up_pos = [protocols.upsample(protocol, pos[i:i + 1], 32)[0] for i in range(12)]
  up_neg = [protocols.upsample(protocol, neg[i:i + 1], 32)[0] for i in range(12)]
  maxes = [float(m.max()) for m in (pos if maxima == "raw" else up_pos)]
  thr = float(np.median(maxes))
  assert got["threshold"] == pytest.approx(thr, abs=1e-12)
  for i in range(12):
    p, n = up_pos[i] > thr, up_neg[i] > thr
    assert got["pia_positive"][i] == pytest.approx(p.sum() / p.size)
    assert got["pia_negative"][i] == pytest.approx(n.sum() / n.size)
    assert got["iou"][i] == pytest.approx(ref_iou(p, n))
  assert got["pia_negative"][3] == 0.0


def test_pia_aoc():
  # #(pIA <= 0.05 i) / 3: 1/3 for i = 0..2, 2/3 for i = 3..10, 1 for i = 11..20.
  assert extended.pia_aoc([0.0, 0.12, 0.52]) == pytest.approx(47 / 60)
  pia = np.random.default_rng(2).random(30)
  rates = [np.sum(pia <= 0.05 * i) / len(pia) for i in range(21)]
  assert extended.pia_aoc(pia) == pytest.approx(
      skmetrics.auc([0.05 * i for i in range(21)], rates), abs=1e-12)
  w = np.arange(30) % 3
  assert extended.pia_aoc(pia, w) == extended.pia_aoc(np.repeat(pia, w))
  assert math.isnan(extended.pia_aoc([0.1], [0]))


def test_bad_inputs():
  with pytest.raises(ValueError, match="unknown"):
    extended.confidence("nope", np.zeros((1, 7, 7)))
  with pytest.raises(ValueError, match="finite"):
    extended.confidence("slavc", np.full((1, 7, 7), np.nan))
  with pytest.raises(ValueError, match="negative"):
    extended.negative_audio_metrics("slavc", np.zeros((2, 7, 7)), np.zeros((3, 7, 7)))
  with pytest.raises(ValueError, match="maxima"):
    extended.negative_audio_metrics("slavc", np.zeros((2, 7, 7)), np.zeros((2, 7, 7)),
                                    maxima="peak")
