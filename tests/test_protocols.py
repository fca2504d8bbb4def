"""The three published cIoU protocols (avjax.evaluate.protocols) against independent references.

Each reference below follows its script step by step, one image at a time:
  * LVS: hche11/Localizing-Visual-Sounds-the-Hard-Way, test.py main() and utils.py
    (normalize_img, testset_gt, Evaluator.cal_CIOU).
  * EZ-VSL: stoneMo/EZ-VSL, test.py validate(), utils.py (normalize_img, Evaluator) and
    datasets.py (load_all_bboxes, bbox2gtmap).
  * SLAVC: stoneMo/SLAVC, test.py validate() and utils.py EvaluatorFull (update,
    finalize_stats, calc_precision_recall, cal_auc); datasets.py as EZ-VSL's.
torch is not a dependency, so its F.interpolate (bilinear and bicubic, align_corners=True) is
written out by hand here; cv2.resize and sklearn.metrics.auc are called where a script calls
them, or checked against the hand-written version.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import pytest
import scipy.ndimage
from sklearn import metrics as skmetrics

from avjax.evaluate import protocols

SIZE = 224
TAU = 0.03
N_MAPS = 1000
K_MAX = 4  # box rows per image (the rest is -1 padding)


# ----------------------------------------------------------------------------- reference resizers
# A table lists, for each output index, (source indices, weights, base tap). Values are formed as
# x[base] + sum over the other taps of w * (x[tap] - x[base]), the sum of w * x written so that
# equal neighbours give exactly their value.

@functools.lru_cache(maxsize=None)
def cv2_linear_table(n_in: int, n_out: int) -> tuple:
  """cv2 INTER_LINEAR (resize.cpp): fx = (dx + 0.5) * scale - 0.5, sx = floor(fx), fx -= sx;
  sx < 0 -> (0, fx = 0); sx >= n_in - 1 -> (n_in - 1, fx = 0)."""
  table = []
  for dx in range(n_out):
    fx = (dx + 0.5) * (n_in / n_out) - 0.5
    sx = math.floor(fx)
    fx -= sx
    if sx < 0:
      sx, fx = 0, 0.0
    if sx >= n_in - 1:
      sx, fx = n_in - 1, 0.0
    table.append(((sx, min(sx + 1, n_in - 1)), (1.0 - fx, fx), 0))
  return tuple(table)


def align_corners_coordinate(d: int, n_in: int, n_out: int) -> float:
  """torch's source coordinate with align_corners=True: d * (in - 1) / (out - 1)."""
  return 0.0 if n_out == 1 else d * (n_in - 1) / (n_out - 1)


@functools.lru_cache(maxsize=None)
def torch_bilinear_table(n_in: int, n_out: int) -> tuple:
  """torch upsample_bilinear2d, align_corners=True: h1 = int(src), h1p = 1 if h1 < in - 1,
  lambda = src - h1."""
  table = []
  for d in range(n_out):
    src = align_corners_coordinate(d, n_in, n_out)
    h1 = int(src)
    h1p = 1 if h1 < n_in - 1 else 0
    lam = src - h1
    table.append(((h1, h1 + h1p), (1.0 - lam, lam), 0))
  return tuple(table)


def keys_cubic(x: float, a: float = -0.75) -> float:
  """torch's cubic_convolution1 (|x| <= 1) and cubic_convolution2 (1 < |x| < 2)."""
  x = abs(x)
  if x <= 1:
    return ((a + 2) * x - (a + 3)) * x * x + 1
  return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a


@functools.lru_cache(maxsize=None)
def torch_bicubic_table(n_in: int, n_out: int) -> tuple:
  """torch upsample_bicubic2d, align_corners=True: input_x = floor(src), t = src - input_x,
  coefficients of distances t + 1, t, 1 - t, 2 - t on input_x - 1 .. input_x + 2, each index
  clamped to [0, in - 1] (upsample_get_value_bounded)."""
  table = []
  for d in range(n_out):
    src = align_corners_coordinate(d, n_in, n_out)
    ix = math.floor(src)
    t = src - ix
    taps = tuple(min(max(ix - 1 + j, 0), n_in - 1) for j in range(4))
    weights = (keys_cubic(t + 1.0), keys_cubic(t), keys_cubic(1.0 - t), keys_cubic(2.0 - t))
    table.append((taps, weights, 1))
  return tuple(table)


def resize_1d(x: np.ndarray, table: tuple, axis: int) -> np.ndarray:
  """Applies a table along one axis of a 2-D array."""
  x = np.moveaxis(x, axis, -1)
  taps = np.array([t for t, _, _ in table])
  weights = np.array([w for _, w, _ in table])
  base = table[0][2]
  ref = x[..., taps[:, base]]
  out = ref.copy()
  for k in range(taps.shape[1]):
    if k != base:
      out = out + weights[:, k] * (x[..., taps[:, k]] - ref)
  return np.moveaxis(out, -1, axis)


def resize(m: np.ndarray, make_table, size: int = SIZE) -> np.ndarray:
  """One map [h, w] -> [size, size]: along x first (cv2's horizontal pass, torch's inner
  interpolation), then along y."""
  wide = resize_1d(m.astype(np.float64), make_table(m.shape[1], size), axis=1)
  return resize_1d(wide, make_table(m.shape[0], size), axis=0)


# ----------------------------------------------------------------------------- reference scripts

def normalize_img(value: np.ndarray) -> np.ndarray:
  """utils.normalize_img (all three repositories): min-max unless max == min."""
  vmin, vmax = value.min(), value.max()
  if not (vmax - vmin) == 0:
    value = (value - vmin) / (vmax - vmin)
  return value


def cal_ciou(infer: np.ndarray, gtmap: np.ndarray, thres: float) -> float:
  """Evaluator.cal_CIOU (LVS and EZ-VSL utils.py; EvaluatorFull.update in SLAVC)."""
  infer_map = np.zeros(gtmap.shape)
  infer_map[infer >= thres] = 1
  with np.errstate(invalid="ignore", divide="ignore"):
    return float(np.sum(infer_map * gtmap) / (np.sum(gtmap) + np.sum(infer_map * (gtmap == 0))))


def real_boxes(boxes: np.ndarray) -> list:
  """The image's box rows without the padding (a row with a negative coordinate)."""
  return [b for b in boxes if min(b) >= 0]


def lvs_ground_truth(boxes: np.ndarray, consensus: int, size: int = SIZE) -> np.ndarray:
  """LVS utils.testset_gt. Flickr: XML corners (integers on the 256 scale; here
  round(v * 256)) -> int(224 * v / 256), temp[y0:y1, x0:x1] = 1 summed, /= 2, > 1 -> 1.
  VGG-SS: int(224 * max(x, 0)), summed, > 0 -> 1."""
  gt_map = np.zeros([size, size])
  for box in real_boxes(boxes):
    if consensus == 2:
      item = [int(size * int(round(v * 256)) / 256) for v in box]
      temp = np.zeros([size, size])
      temp[item[1]:item[3], item[0]:item[2]] = 1
    else:
      item = [int(size * max(v, 0)) for v in box]
      temp = np.zeros([size, size])
      xmin, ymin, xmax, ymax = item
      temp[ymin:ymax, xmin:xmax] = 1
    gt_map += temp
  if consensus == 2:
    gt_map /= 2
    gt_map[gt_map > 1] = 1
  else:
    gt_map[gt_map > 0] = 1
  return gt_map


def bbox2gtmap(boxes: np.ndarray, consensus: int, size: int = SIZE) -> np.ndarray:
  """EZ-VSL / SLAVC datasets.load_all_bboxes then bbox2gtmap. Flickr: int(224 * v / 256);
  VGG-SS: (np.clip(bbox, 0, 1) * 224).astype(int); summed, then Flickr / 2 with > 1 -> 1,
  VGG-SS > 0 -> 1."""
  if consensus == 2:
    bboxes = [[int(size * int(round(v * 256)) / 256) for v in box] for box in real_boxes(boxes)]
  else:
    bboxes = [(np.clip(np.array(box), 0, 1) * size).astype(int) for box in real_boxes(boxes)]
  gt_map = np.zeros([size, size])
  for xmin, ymin, xmax, ymax in bboxes:
    temp = np.zeros([size, size])
    temp[ymin:ymax, xmin:xmax] = 1
    gt_map += temp
  if consensus == 2:
    gt_map = gt_map / 2
    gt_map[gt_map > 1] = 1
  else:
    gt_map[gt_map > 0] = 1
  return gt_map


def sorted_at(values: np.ndarray, index: int) -> float:
  """np.sort(values.flatten())[index] (np.partition puts that same element at `index`)."""
  return np.partition(values.flatten(), index)[index]


def lvs_image(m: np.ndarray, boxes: np.ndarray, consensus: int, size: int = SIZE) -> float:
  """LVS test.py main(), one image."""
  # cv2.resize(heatmap, dsize=(224, 224), interpolation=cv2.INTER_LINEAR), written out
  # (test_reference_resizers_match_cv2_and_scipy checks it against cv2 itself).
  heatmap_now = resize(m, cv2_linear_table, size)
  heatmap_now = normalize_img(-heatmap_now)
  gt_map = lvs_ground_truth(boxes, consensus, size)
  pred = 1 - heatmap_now
  threshold = sorted_at(pred, int(pred.shape[0] * pred.shape[1] / 2))
  pred[pred > threshold] = 1
  pred[pred < 1] = 0
  return cal_ciou(pred, gt_map, 0.5)


def ezvsl_image(m: np.ndarray, boxes: np.ndarray, consensus: int, size: int = SIZE) -> float:
  """EZ-VSL test.py validate(), the audio-visual map of one image."""
  heatmap_av = resize(m, torch_bilinear_table, size)  # F.interpolate bilinear, align_corners
  pred_av = normalize_img(heatmap_av)
  gt_map = bbox2gtmap(boxes, consensus, size)
  thr_av = sorted_at(pred_av, int(pred_av.shape[0] * pred_av.shape[1] * 0.5))
  return cal_ciou(pred_av, gt_map, thr_av)


def slavc_image(m: np.ndarray, boxes: np.ndarray, consensus: int, size: int = SIZE,
                tau: float = TAU) -> float:
  """SLAVC test.py validate() (default: no --relative_prediction, pred_thr 0.5), one image."""
  heatmap_av = resize(m, torch_bicubic_table, size)  # F.interpolate bicubic, align_corners
  av_min, av_max = -1. / tau, 1. / tau
  scores_av = (heatmap_av - av_min) / (av_max - av_min)  # min_max_norm
  gt_map = bbox2gtmap(boxes, consensus, size)
  return cal_ciou(scores_av, gt_map, 0.5)  # EvaluatorFull.update: infer[pred >= pred_thr] = 1


REFERENCE = {"lvs": lvs_image, "ezvsl": ezvsl_image, "slavc": slavc_image}


def script_auc(cious: list) -> float:
  """The scripts' AUC: sklearn.metrics.auc of np.sum(ciou >= 0.05 i) / N, i = 0..20."""
  results = [np.sum(np.array(cious) >= 0.05 * i) / len(cious) for i in range(21)]
  return skmetrics.auc([0.05 * i for i in range(21)], results)


def reference_summary(protocol: str, cious: list, num_boxes: list) -> dict:
  """LVS test.py's and EZ-VSL Evaluator's finalize_*; SLAVC finalize_stats' 'visible' subset."""
  if protocol == "slavc":
    visible = [c for c, bb in zip(cious, num_boxes) if bb > 0]  # filter_subset('visible')
    true_pos = false_pos = 0
    for ciou in visible:  # calc_precision_recall, every confidence >= -1000
      if ciou >= 0.5:
        true_pos += 1
      else:
        false_pos += 1
    precision = 1. if true_pos + false_pos == 0 else true_pos / (true_pos + false_pos)
    return {"ciou_ap50": precision, "auc": script_auc(visible),
            "ciou_mean": np.mean(np.array(visible))}
  if protocol == "lvs":
    return {"ciou_ap50": np.sum(np.array(cious) >= 0.5) / len(cious), "auc": script_auc(cious),
            "ciou_mean": np.mean(np.array(cious))}
  return {"ciou_ap50": np.mean(np.array(cious) >= 0.5), "auc": script_auc(cious),
          "ciou_mean": np.mean(np.array(cious))}


# ----------------------------------------------------------------------------- random data

SHAPES = ((14, 14), (7, 7), (12, 9))
KINDS = ("normal", "cauchy", "ties", "constant", "cosine", "peaked", "aligned", "aligned")


def random_map(rng: np.random.Generator, shape: tuple, kind: str,
               boxes: np.ndarray) -> np.ndarray:
  """One raw map of the given kind ("aligned": high inside the image's first box)."""
  real = real_boxes(boxes)
  if kind == "aligned" and real:
    x0, y0, x1, y1 = real[0]
    cy, cx = (np.arange(shape[0]) + 0.5) / shape[0], (np.arange(shape[1]) + 0.5) / shape[1]
    inside = ((cy >= y0) & (cy <= y1))[:, None] & ((cx >= x0) & (cx <= x1))[None]
    return (np.where(inside, 0.3, -0.3) + rng.normal(size=shape) * 0.15) / TAU
  if kind in ("normal", "aligned"):
    return rng.normal(size=shape) * rng.uniform(0.1, 10) + rng.normal()
  if kind == "cauchy":
    return rng.standard_cauchy(size=shape)
  if kind == "ties":  # few levels: plateaus after resizing, ties at the median
    return rng.integers(0, rng.integers(2, 4), size=shape).astype(np.float64) - 1
  if kind == "constant":
    return np.full(shape, rng.choice([-2.0, -0.5, 0.0, 0.3, 5.0]))
  if kind == "cosine":  # cosine / tau, around 0 so that the fixed threshold splits the map
    return (rng.uniform(-0.4, 0.4, size=shape) + rng.uniform(-0.3, 0.3)) / TAU
  m = np.zeros(shape)  # "peaked": mostly zero, a few peaks (a zero plateau holds the median)
  m[rng.integers(0, shape[0], 3), rng.integers(0, shape[1], 3)] = rng.uniform(1, 5, 3)
  return m * rng.choice([-1.0, 1.0])


def flickr_boxes(rng: np.random.Generator) -> np.ndarray:
  """1-3 annotators' boxes, integer corners on the 256 scale, normalised; -1 padding."""
  out = -np.ones((K_MAX, 4))
  for k in range(rng.integers(1, 4)):
    x0, y0 = rng.integers(0, 160, 2)
    x1, y1 = rng.integers(x0 + 32, 257), rng.integers(y0 + 32, 257)
    out[k] = np.array([x0, y0, x1, y1]) / 256
  return out


def vggss_boxes(rng: np.random.Generator) -> np.ndarray:
  """1-4 normalised boxes (some touching the border, some degenerate); -1 padding."""
  out = -np.ones((K_MAX, 4))
  for k in range(rng.integers(1, 5)):
    x0, y0 = rng.uniform(0, 0.7, 2)
    x1, y1 = rng.uniform(x0 + 0.1, 1), rng.uniform(y0 + 0.1, 1)
    if rng.random() < 0.1:
      x1, y1 = 1.0, 1.0
    if rng.random() < 0.05:
      x1 = x0
    out[k] = (x0, y0, x1, y1)
  return out


@pytest.fixture(scope="module")
def dataset() -> dict:
  """N_MAPS images: maps (list, mixed shapes), boxes [N, K, 4], consensus [N] (first half
  Flickr-style, second half VGG-SS-style); a few images have no box at all."""
  rng = np.random.default_rng(20240607)
  maps, boxes, consensus = [], [], []
  for i in range(N_MAPS):
    flickr = i < N_MAPS // 2
    b = flickr_boxes(rng) if flickr else vggss_boxes(rng)
    if rng.random() < 0.03:
      b[:] = -1
    kind = KINDS[rng.integers(len(KINDS))]
    maps.append(random_map(rng, SHAPES[rng.integers(len(SHAPES))], kind, b))
    if i % 250 == 7:  # no box and a negative constant map: nothing predicted (lvs, slavc)
      b[:] = -1
      maps[-1] = np.full(maps[-1].shape, -2.0)
    boxes.append(b)
    consensus.append(2 if flickr else 1)
  return {"maps": maps, "boxes": np.array(boxes), "consensus": np.array(consensus)}


def library_cious(protocol: str, data: dict) -> np.ndarray:
  """protocols.ciou_per_image over the mixed-shape data set, one call per map shape."""
  out = np.full(N_MAPS, np.inf)
  shapes = [m.shape for m in data["maps"]]
  for shape in set(shapes):
    sel = np.array([s == shape for s in shapes])
    maps = np.stack([m for m, s in zip(data["maps"], shapes) if s == shape])
    out[sel] = protocols.ciou_per_image(protocol, maps, data["boxes"][sel],
                                        data["consensus"][sel], tau=TAU)
  return out


@pytest.fixture(scope="module")
def library(dataset) -> dict:
  """Library cIoUs of every protocol on the data set."""
  return {p: library_cious(p, dataset) for p in protocols.PROTOCOLS}


def assert_same(actual, expected, tol: float = 1e-9):
  """Equal to tol, with NaN where and only where the other has NaN."""
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
  np.testing.assert_allclose(actual, expected, rtol=0, atol=tol, equal_nan=True)


# ----------------------------------------------------------------------------- tests

@pytest.mark.parametrize("protocol", protocols.PROTOCOLS)
def test_matches_reference_on_random_maps(protocol, dataset, library):
  ref = np.array([REFERENCE[protocol](m, b, c) for m, b, c in
                  zip(dataset["maps"], dataset["boxes"], dataset["consensus"])])
  got = library[protocol]
  assert_same(got, ref)
  num_boxes = protocols.box_counts(dataset["boxes"])
  halves = {"flickr": slice(0, N_MAPS // 2), "vggss": slice(N_MAPS // 2, N_MAPS),
            "all": slice(0, N_MAPS)}
  for part in halves.values():
    mine = protocols.summary(protocol, got[part], num_boxes[part])
    theirs = reference_summary(protocol, list(ref[part]), list(num_boxes[part]))
    for key in ("ciou_ap50", "auc", "ciou_mean"):
      assert_same(mine[key], theirs[key])
  # The data reach every branch: positives and failures, NaN (nothing predicted, no box).
  assert 0.02 < np.mean(ref >= 0.5) < 0.95
  assert np.isnan(ref).any() == (protocol != "ezvsl")  # ezvsl always predicts half the image
  if protocol == "slavc":  # its NaNs are images without a box, which its summary leaves out
    assert np.isnan(protocols.summary(protocol, got)["ciou_mean"])
    assert not np.isnan(mine["ciou_mean"])


def test_reference_resizers_match_cv2_and_scipy():
  rng = np.random.default_rng(3)
  for shape in SHAPES + ((2, 5), (224, 224)):  # cv2 takes 1-pixel sides its own way
    m = rng.normal(size=shape)
    cv = cv2.resize(m, dsize=(SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(resize(m, cv2_linear_table), cv, rtol=0, atol=1e-12)
    np.testing.assert_allclose(protocols.upsample("lvs", m[None])[0], cv, rtol=0, atol=1e-12)
    if min(shape) > 1:  # scipy's zoom without grid mode is align_corners=True
      zoom = scipy.ndimage.zoom(m, (SIZE / shape[0], SIZE / shape[1]), order=1,
                                grid_mode=False, mode="nearest")
      np.testing.assert_allclose(resize(m, torch_bilinear_table), zoom, rtol=0, atol=1e-12)
  # Bicubic by hand, [0, 1, 4] to 5 samples (s = 0, 0.5, 1, 1.5, 2): at t = 0.5 the Keys
  # weights (A = -0.75) are -0.09375, 0.59375, 0.59375, -0.09375, so s = 0.5 reads taps
  # (0, 0, 1, 2): 0.59375 * 1 - 0.09375 * 4 = 0.21875, and s = 1.5 reads (0, 1, 2, 2):
  # 0.59375 * 1 + 0.5 * 4 = 2.59375; the samples themselves come back exactly.
  row = np.array([[0.0, 1.0, 4.0]])
  expected = [0.0, 0.21875, 1.0, 2.59375, 4.0]
  np.testing.assert_allclose(resize_1d(row, torch_bicubic_table(3, 5), axis=1)[0], expected,
                             rtol=0, atol=1e-15)
  np.testing.assert_allclose(protocols.upsample("slavc", np.tile(row, (3, 1))[None], 5)[0, 1],
                             expected, rtol=0, atol=1e-15)
  # Plateaus stay exact: a constant map resizes to exactly that constant.
  for protocol in protocols.PROTOCOLS:
    assert np.all(protocols.upsample(protocol, np.full((1, 7, 7), 0.3)) == 0.3)


def test_protocols_differ(library):
  """Each pair disagrees on many of the same images: none is another in disguise."""
  for a in protocols.PROTOCOLS:
    for b in protocols.PROTOCOLS:
      if a < b:
        differ = ~np.isclose(library[a], library[b], rtol=0, atol=1e-6, equal_nan=True)
        assert differ.mean() > 0.5, (a, b, differ.mean())
  aucs = {p: protocols.summary(p, library[p])["auc"] for p in protocols.PROTOCOLS}
  assert len({round(v, 6) for v in aucs.values()}) == 3, aucs


# Hand-computed: the 2 x 2 map [[0.1, 0.1], [1, 1]] evaluated at size 4 varies along y only.
#  lvs (cv2, s = (d + .5) / 2 - .5 = -.25, .25, .75, 1.25 -> clamp): rows .1, .325, .775, 1;
#    pred = 1 - normalize(-h) = 0, .25, .75, 1; sorted[16 / 2] = .75 (rows 2's value), > .75
#    or >= 1 -> row 3 only: 4 pixels.
#  ezvsl (align corners, s = d / 3): rows .1, .4, .7, 1 -> 0, 1/3, 2/3, 1; sorted[8] = 2/3,
#    >= -> rows 2, 3: 8 pixels.
#  slavc (bicubic, all rows between .1 and 1): (x + 1/tau) / (2/tau) >= .5 <=> x >= 0 -> all
#    16 pixels.
# VGG-SS box (0, .25, 1, 1) -> int(4 * .25) = 1: rows 1..3, 12 pixels of 1:
#    lvs 4 / 12, ezvsl 8 / 12, slavc 12 / (12 + 4 outside) = .75.
# Flickr boxes (0, 0, 256, 256) and (0, 128, 256, 256) -> int(4 * v / 256): the whole map and
#    rows 2, 3; halved and clipped: rows 0, 1 are .5, rows 2, 3 are 1 (sum 12):
#    lvs 4 / 12, ezvsl 8 / 12, slavc 12 / 12.
HAND_MAP = np.array([[[0.1, 0.1], [1.0, 1.0]]])
HAND_CASES = {"lvs": (1 / 3, 1 / 3), "ezvsl": (2 / 3, 2 / 3), "slavc": (0.75, 1.0)}


@pytest.mark.parametrize("protocol", protocols.PROTOCOLS)
def test_hand_computed_tiny_case(protocol):
  vggss = np.array([[[0, 0.25, 1, 1]]])
  flickr = np.array([[[0, 0, 1, 1], [0, 0.5, 1, 1], [-1, -1, -1, -1]]])
  pixels = {"lvs": 4, "ezvsl": 8, "slavc": 16}[protocol]
  assert protocols.prediction_masks(protocol, HAND_MAP, size=4).sum() == pixels
  want_vggss, want_flickr = HAND_CASES[protocol]
  assert protocols.ciou_per_image(protocol, HAND_MAP, vggss, [1], size=4)[0] == pytest.approx(
      want_vggss, abs=1e-12)
  assert protocols.ciou_per_image(protocol, HAND_MAP, flickr, [2], size=4)[0] == pytest.approx(
      want_flickr, abs=1e-12)
  assert REFERENCE[protocol](HAND_MAP[0], vggss[0], 1, 4) == pytest.approx(want_vggss, abs=1e-12)
  assert REFERENCE[protocol](HAND_MAP[0], flickr[0], 2, 4) == pytest.approx(want_flickr,
                                                                             abs=1e-12)


def test_constant_and_tied_maps():
  constants = np.array([-2.0, -1e-3, 0.0, 0.3]).reshape(-1, 1, 1) * np.ones((1, 7, 7))
  # lvs: a constant c stays -c through normalize_img, pred = 1 + c: all positive iff 1 + c >= 1.
  np.testing.assert_array_equal(protocols.prediction_masks("lvs", constants).mean(axis=(1, 2)),
                                [0, 0, 1, 1])
  # ezvsl: threshold = the constant itself, >= -> everything.
  np.testing.assert_array_equal(protocols.prediction_masks("ezvsl", constants).mean(axis=(1, 2)),
                                [1, 1, 1, 1])
  # slavc: the fixed threshold, cosine >= 0.
  np.testing.assert_array_equal(protocols.prediction_masks("slavc", constants).mean(axis=(1, 2)),
                                [0, 0, 1, 1])
  # A zero plateau holding the median with one peak: lvs keeps only pixels above it (> 0),
  # ezvsl every pixel (>= 0).
  peak = np.zeros((1, 7, 7))
  peak[0, 3, 3] = 1.0
  lvs = protocols.prediction_masks("lvs", peak)
  assert 0 < lvs.sum() < SIZE * SIZE / 4
  assert protocols.prediction_masks("ezvsl", peak).all()
  # No box and nothing predicted: the scripts' 0 / 0.
  nobox = -np.ones((1, 1, 4))
  assert np.isnan(protocols.ciou_per_image("lvs", constants[:1], nobox, [1])[0])
  assert protocols.ciou_per_image("ezvsl", constants[:1], nobox, [1])[0] == 0.0


def test_ground_truth_conversion():
  # Flickr corners (100, 37, 201, 255) on the 256 scale: int(224 v / 256) = 87 (87.5), 32
  # (32.375), 175 (175.875), 223 (223.125): rows 32..222, columns 87..174, each 0.5.
  flickr = np.array([[[100, 37, 201, 255], [-1, -1, -1, -1]]]) / 256
  flickr[0, 1] = -1
  for protocol in protocols.PROTOCOLS:
    gt = protocols.ground_truth_maps(protocol, flickr, [2])[0]
    assert gt.sum() == 0.5 * 88 * 191
    assert gt[32, 87] == gt[222, 174] == 0.5
    assert gt[31, 87] == gt[32, 86] == gt[223, 174] == gt[222, 175] == 0
  # Three overlapping annotators: 1 where two or three overlap, 0.5 where one box is.
  three = np.array([[[0, 0, 128, 128], [0, 0, 128, 128], [0, 0, 256, 256]]]) / 256
  gt = protocols.ground_truth_maps("lvs", three, [2])[0]
  assert gt[:112, :112].min() == 1 and gt[112:, 112:].max() == 0.5 and gt.min() == 0.5
  # VGG-SS (0.5, 0.1, 0.75, 1.0): int(224 v) = 112, 22 (22.4), 168, 224; the union with a
  # degenerate box adds nothing.
  vggss = np.array([[[0.5, 0.1, 0.75, 1.0], [0.3, 0.3, 0.3, 0.9], [0.5, 0.1, 0.6, 0.5]]])
  gt = protocols.ground_truth_maps("ezvsl", vggss, [1])[0]
  assert gt.sum() == 56 * 202 and gt[22, 112] == gt[223, 167] == 1 and gt[21, 112] == 0
  np.testing.assert_array_equal(gt, bbox2gtmap(vggss[0], 1))
  np.testing.assert_array_equal(gt, lvs_ground_truth(vggss[0], 1))
  np.testing.assert_array_equal(protocols.box_counts(vggss), [3])


def test_summary_rules():
  # cIoUs 0, .5, 1: success 1 at t = 0, 2/3 on .05..0.5, 1/3 on .55..1 (0.05 * 10 == 0.5 and
  # 0.05 * 20 == 1.0 in floating point). Trapezoids: (1 + 2/3) / 2 * .05 + 2/3 * .45
  # + (2/3 + 1/3) / 2 * .05 + 1/3 * .45 = 31/60.
  for protocol in protocols.PROTOCOLS:
    s = protocols.summary(protocol, [0.0, 0.5, 1.0])
    assert s["ciou_ap50"] == pytest.approx(2 / 3) and s["auc"] == pytest.approx(31 / 60)
    assert s["ciou_mean"] == pytest.approx(0.5)
    # A NaN cIoU fails every threshold.
    s = protocols.summary(protocol, [0.0, 0.5, 1.0, np.nan])
    assert s["ciou_ap50"] == pytest.approx(0.5) and s["auc"] == pytest.approx(31 / 80)
    assert np.isnan(s["ciou_mean"])
  # slavc counts only images with a box; the others count every image.
  s = protocols.summary("slavc", [0.0, 0.5, 1.0, np.nan], num_boxes=[1, 2, 1, 0])
  assert s["ciou_ap50"] == pytest.approx(2 / 3) and s["auc"] == pytest.approx(31 / 60)
  assert s["ciou_mean"] == pytest.approx(0.5)
  s = protocols.summary("lvs", [0.0, 0.5, 1.0, np.nan], num_boxes=[1, 2, 1, 0])
  assert s["ciou_ap50"] == pytest.approx(0.5)
  assert np.isnan(protocols.summary("slavc", [0.7], num_boxes=[0])["auc"])


def test_unknown_protocol_and_bad_consensus():
  maps, boxes = np.zeros((1, 7, 7)), np.array([[[0.1, 0.1, 0.5, 0.5]]])
  calls = [lambda: protocols.ciou_per_image("cav-mae", maps, boxes, [1]),
           lambda: protocols.summary("LVS", [0.5]),
           lambda: protocols.upsample("", maps),
           lambda: protocols.ground_truth_maps("ez-vsl", boxes, [1])]
  for call in calls:
    with pytest.raises(ValueError) as err:
      call()
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in protocols.PROTOCOLS)
  with pytest.raises(ValueError, match="consensus"):
    protocols.ciou_per_image("lvs", maps, boxes, [3])
