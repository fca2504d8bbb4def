"""Localisation benchmarks with non-sounding pairs and with negative audio.

Two benchmarks score what a model does when the sound does NOT come from the image, on top of
the per-image cIoU of `avjax.evaluate.protocols`.

Extended benchmarks: Mo & Morgado, A Closer Look at Weakly-Supervised Audio-Visual Source
Localization (NeurIPS 2022); stoneMo/SLAVC at 05b429c6 (utils.py and datasets.py as of
6fb2a49a; test.py, datasets.get_test_dataset, utils.EvaluatorFull: update,
calc_precision_recall, calc_ap, cal_auc, filter_subset, finalize_stats). Extended
Flickr-SoundNet and Extended VGG-SS add pairs with no sounding object in the frame
(metadata/*_test_plus_silent.csv rows labelled "non-sounding": 250 Flickr pairs, each an
image with another clip's audio; 5158 VGG-SS pairs, 4779 with another clip's audio and 379
with the clip's own) whose box list is empty. What the scripts do:
  1. Confidence (test.validate): the raw map Savl [7 x 7] is resized to 224 x 224 by bicubic
     interpolation (align_corners=True), normalised with the FIXED range [-1 / tau, 1 / tau]
     (scores_av = (x + 1 / tau) / (2 / tau)), and conf = np.sort(scores.flatten())[-n//4:]
     .mean(), the mean of the top ceil(n / 4) of the n = 224 * 224 values (`confidence`).
  2. cIoU (EvaluatorFull.update) as protocols "slavc"; a non-sounding pair has an all-zero
     ground truth, so its cIoU is 0 (some pixel predicted) or NaN (none); it never enters a
     metric. bb = len(boxes) after dropping rows with x0 < 0; "visible" means bb > 0.
  3. calc_precision_recall(conf_thr, ciou_thr = 0.5): a pair is detected iff conf >= conf_thr.
     bb == 0: detected -> FP. bb > 0: detected and ciou >= ciou_thr -> TP, detected otherwise
     -> FP (a NaN cIoU fails), not detected -> FN. precision = TP / (TP + FP) (1 if no
     detection), recall = TP / (TP + FN) (1 if TP + FN = 0).
  4. AP (calc_ap): with M pairs and s = max(1, M // 200), the confidence thresholds are
     np.sort(conf)[:-1][::-s], i.e. the sorted values at positions M - 2, M - 2 - s, ... >= 0
     (descending; the largest confidence is never a threshold). With (p_i, r_i) at those
     thresholds and pm_i = max(p_i, p_{i+1}, ...), AP = sum_i pm_i * (r_{i+1} - r_i) over
     consecutive thresholds (0 for fewer than two). No term runs from recall 0.
  5. F1 (finalize_stats): thresholds sorted(conf)[::max(1, M // 10)], the sorted values at
     positions 0, k, 2k, ... (about ten, lowest first); F1 = 2 r p / (r + p) (0 if r + p = 0).
     The script prints the list; "max-F1" is its maximum (`extended_metrics` "max_f1").
  6. Per subset ("all": every pair; "visible": bb > 0) and ciou_thr in (0.5, 0.75):
     Precision = calc_precision_recall at conf_thr = -1000 (every pair detected), AP, F1 and
     AUC = cal_auc, sklearn.metrics.auc of mean(ciou >= 0.05 * i), i = 0..20, over the visible
     pairs of the subset. The size subsets (small / medium / large / huge, by gt_map.sum())
     are not reproduced here.
The scripts shuffle the pairs (random.shuffle); no metric depends on the order.

Negative audio: Juanola, Haro & Fuentes, A Critical Assessment of Visual Sound Source
Localization Models Including Negative Audio (ICASSP 2025, arXiv 2410.01020);
xavijuanola/vssl_eval at e8ebbc90 (eval.py eval / eval_lvs and utils_dir/eval_utils.py:
binarized_negatives_thresholds, append_metrics_binarized_pred, compute_pIA,
compute_IOU_maps, compute_AUC_pIA, compute_metrics). Each test image is scored with its own
audio and with silence (zeros), white noise (N(0, 1) samples) and an off-screen clip (another
class's audio; the script pools 10 passes over the test set, each with its own random
off-screen draws). What the script does:
  * The threshold is one number per model, hard-coded in eval.main: "th_max", "th_max10" =
    1.1 * th_max and "th_maxq3" (e.g. SLAVC 0.5201 / 0.5721 / 0.5450, EZ-VSL 0.6041 / 0.6645
    / 0.6382), in the raw map's units (cosine for EZ-VSL / SLAVC / FNAC: no normalisation).
    The script records each positive map's maximum, taken on the model's low-resolution
    output before resizing, and reports their median ("Median_Max_Heatmap"); the code that
    turned the maxima into the constants is not published. th_max is most likely that median
    and th_maxq3 the upper quartile (the 1.1 factor checks out for all six models; the
    quartile reading is an inference, not confirmed from the paper's text).
  * A map is resized to 224 x 224 and binarised with pixel > threshold (strict). pIA =
    sum(mask) / mask.size ("percentage of image area"), reported as a mean x 100 over images;
    AOC = sklearn.metrics.auc of the fraction of images with pIA <= 0.05 * i, i = 0..20.
  * IoU(positive mask, negative mask) = |P & N| / |P | N|, and 1 when both are empty.
  * The combined scores use the "maxq3" threshold: F = 2 a b / (a + b) of the mean cIoU of the
    thresholded positive maps and 100 - pIA of the negatives.
  * The script resizes the positive EZ-VSL / SLAVC / FNAC map with torch bilinear
    (align_corners=True) but every negative map with cv2 INTER_LINEAR.

avjax's definition (`negative_audio_metrics`): the positive and the negative maps are both
resized with the protocol's interpolation (`protocols.upsample`, raw scores, no per-image
normalisation: that would make every maximum 1); the threshold is
scale * quantile(max over each positive map, q), by default the median (q = 0.5, scale = 1:
"th_max"; q = 0.75 for the upper quartile, scale = 1.1 for "th_max10"), of the maxima of the
raw maps as given (maxima="raw", as the script) or of the resized maps (maxima="upsampled");
pixels > threshold are positive.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from avjax.evaluate import protocols
from avjax.evaluate.metrics import AUC_THRESHOLDS, auc_of_success

IOU_THRESHOLD = 0.5  # calc_precision_recall's ciou_thr (finalize_stats also reports 0.75)
AP_STEPS = 200  # calc_ap: every max(1, M // 200)-th sorted confidence
F1_STEPS = 10  # finalize_stats: every max(1, M // 10)-th sorted confidence


def _top_quarter_mean(values: np.ndarray) -> np.ndarray:
  """Per row of [B, n], the mean of its top ceil(n / 4) values (np.sort(v)[-n//4:].mean())."""
  n = values.shape[1]
  k = -(-n // 4)
  return np.partition(values, n - k, axis=1)[:, n - k:].mean(axis=1)


def confidence(protocol: str, maps: np.ndarray, size: int = 224, *, tau: float = 0.03,
               chunk: int = 16) -> np.ndarray:
  """Per-map confidence: the mean of the top quarter of the resized map's values.

  "slavc" is SLAVC's test.validate: the map resized as the protocol does (bicubic,
  align_corners=True), normalised with the fixed range (x + 1 / tau) / (2 / tau), and the mean
  of its top ceil(size^2 / 4) values (np.sort(...)[-n//4:].mean()); values in [0, 1] for a
  cosine map. "lvs" and "ezvsl" have no confidence in their scripts; the same statistic is
  taken on the protocol's resized RAW map (cv2 half-pixel bilinear / align-corners bilinear),
  without the per-image min-max normalisation their cIoU uses, which would map every maximum
  to 1 and make maps incomparable. AP and max-F1 depend only on the order of the confidences
  (their thresholds are confidences), so any increasing affine rescaling, such as slavc's
  fixed normalisation, leaves them unchanged.

  Args:
    protocol: one of protocols.PROTOCOLS.
    maps: float [B, h, w], raw model scores (finite; slavc: cosine / tau).
    size: side of the resized map (the scripts: 224).
    tau: "slavc" only, the raw map's temperature.
    chunk: maps resized at once.

  Returns:
    float64 [B].
  """
  protocols.check_protocol(protocol)
  maps = np.asarray(maps, np.float64)
  if maps.ndim != 3:
    raise ValueError(f"maps must be [B, h, w], got shape {maps.shape}")
  if not np.isfinite(maps).all():
    raise ValueError("maps must be finite")
  out = np.empty(len(maps))
  lo, hi = -1.0 / tau, 1.0 / tau  # SLAVC's av_min, av_max
  for s in range(0, len(maps), chunk):
    block = maps[s:s + chunk]
    up = protocols.upsample(protocol, block, size).reshape(len(block), -1)
    if protocol == "slavc":
      up -= lo
      up /= hi - lo
    out[s:s + chunk] = _top_quarter_mean(up)
  return out


# ----------------------------------------------------------------------------- extended metrics

def _counts(weights: Optional[np.ndarray], n: int) -> np.ndarray:
  """Row multiplicities as int64 [n]: non-negative integers (default 1)."""
  if weights is None:
    return np.ones(n, np.int64)
  w = np.asarray(weights).reshape(-1)
  if len(w) != n:
    raise ValueError(f"{n} rows but {len(w)} weights")
  if w.dtype.kind == "b":
    return w.astype(np.int64)
  if w.dtype.kind not in "iuf":
    raise ValueError(f"weights must be non-negative integers, got dtype {w.dtype}")
  if w.dtype.kind == "f" and not (np.isfinite(w).all() and np.all(w == np.round(w))):
    raise ValueError("weights must be non-negative integers")
  if np.any(w < 0):
    raise ValueError("weights must be non-negative")
  return w.astype(np.int64)


def _precision_recall(tp: np.ndarray, fp: np.ndarray,
                      fn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """calc_precision_recall's ratios of integer counts, with its 1 for an empty denominator."""
  det, pos = tp + fp, tp + fn
  precision = np.where(det == 0, 1.0, tp / np.maximum(det, 1))
  recall = np.where(pos == 0, 1.0, tp / np.maximum(pos, 1))
  return precision, recall


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
  """2 r p / (r + p), 0 where r + p = 0."""
  total = recall + precision
  return np.where(total > 0, 2.0 * recall * precision / np.where(total > 0, total, 1.0), 0.0)


class _SortedPairs:
  """Pairs sorted by confidence once; metrics for any multiplicities in O(N) each."""

  def __init__(self, confidences: np.ndarray, hit: np.ndarray, sounding: np.ndarray):
    order = np.argsort(confidences, kind="stable")
    self.order = order
    self.conf = confidences[order]
    self.hit = hit[order]
    self.sounding = sounding[order]
    n = len(order)
    new = np.ones(n, bool)
    new[1:] = self.conf[1:] != self.conf[:-1]
    self.starts = np.flatnonzero(new)  # first row of each run of equal confidences
    self.group_start = self.starts[np.cumsum(new) - 1]  # [n]: first row of each row's run

  def metrics(self, w: np.ndarray) -> dict:
    """AP, the F1 grid, max-F1 and dense max-F1 with pair i repeated w[i] times (input order)."""
    nan = float("nan")
    w = w[self.order]
    cum_w = np.cumsum(w)
    total = int(cum_w[-1]) if len(w) else 0
    if total == 0:
      return {"ap": nan, "f1": np.zeros(0), "f1_thresholds": np.zeros(0), "max_f1": nan,
              "max_f1_dense": nan}
    # Suffix sums from row i on: detected weight, true positives, sounding weight.
    def suffix(x: np.ndarray) -> np.ndarray:
      out = np.zeros(len(x) + 1, np.int64)
      out[:-1] = np.cumsum(x[::-1])[::-1]
      return out
    det_from = suffix(w)
    tp_from = suffix(w * self.hit)
    snd_from = suffix(w * self.sounding)
    num_sounding = snd_from[0]

    def at_rows(first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
      """Precision and recall with the rows from `first` on detected (conf >= conf[first])."""
      tp = tp_from[first]
      return _precision_recall(tp, det_from[first] - tp, num_sounding - snd_from[first])

    def at_positions(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
      """Thresholds np.sort(repeated conf)[pos]: (threshold, precision, recall)."""
      rows = np.searchsorted(cum_w, pos, side="right")  # the row holding repeated index pos
      return (self.conf[rows],) + at_rows(self.group_start[rows])

    _, p_ap, r_ap = at_positions(np.arange(total - 2, -1, -max(1, total // AP_STEPS)))
    p_max = np.maximum.accumulate(p_ap[::-1])[::-1]
    ap = float(np.sum(p_max[:-1] * np.diff(r_ap)))
    thr_f1, p_f1, r_f1 = at_positions(np.arange(0, total, max(1, total // F1_STEPS)))
    f1 = _f1(p_f1, r_f1)
    present = np.add.reduceat(w, self.starts) > 0  # runs with a repeated row
    f1_dense = _f1(*at_rows(self.starts[present]))
    return {"ap": ap, "f1": f1, "f1_thresholds": thr_f1, "max_f1": float(f1.max()),
            "max_f1_dense": float(f1_dense.max())}


class ExtendedScorer:
  """SLAVC's extended-benchmark metrics of fixed pairs under many row multiplicities.

  Sorts the pairs by confidence once; each call then costs O(N) (weighted cumulative sums),
  so bootstrapping over clips (passing each resample's multiplicities) is cheap. See
  `extended_metrics` for the arguments and the result.
  """

  def __init__(self, cious: np.ndarray, confidences: np.ndarray, sounding: np.ndarray, *,
               iou_threshold: float = IOU_THRESHOLD):
    cious = np.asarray(cious, np.float64).reshape(-1)
    confidences = np.asarray(confidences, np.float64).reshape(-1)
    sounding = np.asarray(sounding).reshape(-1) > 0
    if not len(cious) == len(confidences) == len(sounding):
      raise ValueError(f"{len(cious)} cIoUs, {len(confidences)} confidences and "
                       f"{len(sounding)} sounding flags")
    if np.isnan(confidences).any():
      raise ValueError("confidences must not be NaN")
    self.num_rows = len(cious)
    with np.errstate(invalid="ignore"):
      hit = sounding & (cious >= iou_threshold)  # a NaN cIoU is a miss
      # Number of the AUC thresholds 0.05 * i a sounding pair's cIoU reaches (NaN: none).
      self._reached = np.sum(cious[sounding][:, None] >= AUC_THRESHOLDS[None], axis=1)
    self._sounding = sounding
    self._all = _SortedPairs(confidences, hit, sounding)
    self._visible = _SortedPairs(confidences[sounding], hit[sounding], sounding[sounding])

  def __call__(self, weights: Optional[np.ndarray] = None) -> dict:
    """The metrics with row i counted weights[i] times (default once each)."""
    nan = float("nan")
    w = _counts(weights, self.num_rows)
    w_vis = w[self._sounding]
    total, visible = int(w.sum()), int(w_vis.sum())
    every = self._all.metrics(w)
    vis = self._visible.metrics(w_vis)
    hits = int(np.sum(w[self._all.order] * self._all.hit))
    if visible:
      reached = np.bincount(self._reached, weights=w_vis, minlength=len(AUC_THRESHOLDS) + 1)
      success = np.cumsum(reached[::-1])[::-1][1:] / visible  # #(ciou >= t_i) / #visible
      auc = float(auc_of_success(success))
    else:
      auc = nan
    return {
        "ap": every["ap"],
        "max_f1": every["max_f1"],
        "max_f1_dense": every["max_f1_dense"],
        "f1_grid": every["f1"],
        "f1_thresholds": every["f1_thresholds"],
        "precision_all": hits / total if total else nan,
        "precision_visible": hits / visible if visible else nan,
        "ap_visible": vis["ap"],
        "max_f1_visible": vis["max_f1"],
        "max_f1_dense_visible": vis["max_f1_dense"],
        "auc_visible": auc,
        "num_pairs": total,
        "num_visible": visible,
    }


def extended_metrics(cious: np.ndarray, confidences: np.ndarray, sounding: np.ndarray,
                     weights: Optional[np.ndarray] = None, *,
                     iou_threshold: float = IOU_THRESHOLD) -> dict:
  """SLAVC's extended-benchmark metrics (EvaluatorFull.finalize_stats) of scored pairs.

  A pair is detected at confidence threshold t iff its confidence >= t. TP: a sounding pair
  detected with cIoU >= iou_threshold; FP: a detected non-sounding pair, or a detected
  sounding pair below it (a NaN cIoU fails); FN: a sounding pair not detected. precision =
  TP / (TP + FP) (1 with no detection), recall = TP / (TP + FN) (1 with no sounding pair).
  With M pairs (counting multiplicities) and sorted confidences c_0 <= ... <= c_{M-1}:
    * "ap" (AP-all): thresholds c_{M-2}, c_{M-2-s}, ... (s = max(1, M // 200), down to index
      >= 0); pm_i = max(p_i, p_{i+1}, ...); AP = sum_i pm_i (r_{i+1} - r_i); 0 if M < 2.
    * "f1_grid" / "max_f1": SLAVC's coarse grid, the thresholds c_0, c_k, c_2k, ...
      (k = max(1, M // 10), about ten; "f1_thresholds"), F1 = 2 r p / (r + p) (0 if r + p = 0),
      and its maximum.
    * "max_f1_dense": the maximum F1 over every distinct confidence as a threshold.
    * "precision_all" (Precision-all): every pair detected, #TP / M (SLAVC: confidence
      threshold -1000, i.e. every pair for confidences above it).
    * "precision_visible" (Precision-visible, the standard benchmark's cIoU AP50): #TP over
      the sounding pairs.
    * "ap_visible", "max_f1_visible", "max_f1_dense_visible": the same on the sounding pairs
      alone (SLAVC's "visible" subset), where every miss is a FP.
    * "auc_visible" (AUC-all = AUC-visible): the trapezoidal area of #(cIoU >= 0.05 i) over
      the sounding pairs, i = 0..20.
    * "num_pairs", "num_visible": M and the sounding pairs' count.
  NaN where no pair (or, for the *_visible values and auc, no sounding pair) counts.

  Args:
    cious: float [N], per-pair cIoU (`protocols.ciou_per_image`; ignored for non-sounding
      pairs, whose ground truth is empty).
    confidences: float [N], per-pair confidence (`confidence`); not NaN.
    sounding: bool [N], the pairs with a sounding object in the frame (or box counts: > 0 is
      sounding). SLAVC's rule is `protocols.box_counts(boxes) > 0`: a pair with no box is
      non-sounding.
    weights: non-negative integers [N], each row's multiplicity (default 1): the result is
      exactly that of the rows repeated weights[i] times, e.g. a bootstrap resample of clips.
    iou_threshold: the cIoU a detection needs (SLAVC reports 0.5 and 0.75).

  Returns:
    dict as above: floats, ints, and the arrays "f1_grid" and "f1_thresholds".
  """
  return ExtendedScorer(cious, confidences, sounding, iou_threshold=iou_threshold)(weights)


# ----------------------------------------------------------------------------- negative audio

def negative_audio_metrics(protocol: str, positive_maps: np.ndarray, negative_maps: np.ndarray,
                           size: int = 224, *, quantile: float = 0.5, scale: float = 1.0,
                           threshold: Optional[float] = None, maxima: str = "raw",
                           chunk: int = 16) -> dict:
  """Per-image pIA of positive and negative maps and their masks' IoU, at one threshold.

  Both maps of image i are resized with the protocol's interpolation (`protocols.upsample`,
  raw scores); a pixel is positive iff its value > threshold. threshold = scale *
  np.quantile(m, quantile), m the maximum of each positive map (maxima="raw": of the maps as
  given, as vssl_eval records them; "upsampled": of the resized maps), unless `threshold` is
  given (e.g. one fixed from another set). The defaults give the median of the maxima (the
  script's "th_max"); quantile=0.75 gives the upper quartile ("th_maxq3" as read here),
  scale=1.1 its "th_max10". pIA = #positive pixels / size^2; IoU = |P & N| / |P | N|, 1 when
  both masks are empty. Call once per kind of negative audio (silence, noise, off-screen);
  the threshold depends on the positive maps only.

  Args:
    protocol: one of protocols.PROTOCOLS (selects the interpolation).
    positive_maps: float [N, h, w], raw maps with each image's own audio (finite).
    negative_maps: float [N, h', w'], the same images' raw maps with the negative audio.
    size: side of the resized maps.
    quantile: the quantile of the positive maxima (numpy's linear interpolation).
    scale: factor applied to that quantile.
    threshold: a fixed threshold instead (quantile and scale are then unused).
    maxima: "raw" or "upsampled", the maps whose maxima set the threshold.
    chunk: images resized at once.

  Returns:
    {"pia_negative": [N], "pia_positive": [N], "iou": [N] (float64), "threshold": float,
     "max_positive": [N], "max_negative": [N] (the maps' maxima, raw or resized as `maxima`)}.
  """
  protocols.check_protocol(protocol)
  if maxima not in ("raw", "upsampled"):
    raise ValueError(f"maxima must be 'raw' or 'upsampled', got {maxima!r}")
  pos = np.asarray(positive_maps, np.float64)
  neg = np.asarray(negative_maps, np.float64)
  for name, m in (("positive_maps", pos), ("negative_maps", neg)):
    if m.ndim != 3:
      raise ValueError(f"{name} must be [N, h, w], got shape {m.shape}")
    if not np.isfinite(m).all():
      raise ValueError(f"{name} must be finite")
  if len(pos) != len(neg):
    raise ValueError(f"{len(pos)} positive but {len(neg)} negative maps")
  if len(pos) == 0:
    raise ValueError("no maps")
  n = len(pos)
  if maxima == "raw":
    max_pos, max_neg = pos.max(axis=(1, 2)), neg.max(axis=(1, 2))
  else:
    max_pos, max_neg = np.empty(n), np.empty(n)
    for s in range(0, n, chunk):
      max_pos[s:s + chunk] = protocols.upsample(protocol, pos[s:s + chunk], size).max(axis=(1, 2))
      max_neg[s:s + chunk] = protocols.upsample(protocol, neg[s:s + chunk], size).max(axis=(1, 2))
  thr = float(threshold) if threshold is not None else float(
      scale * np.quantile(max_pos, quantile))
  pia_pos, pia_neg, iou = np.empty(n), np.empty(n), np.empty(n)
  area = size * size
  for s in range(0, n, chunk):
    p = protocols.upsample(protocol, pos[s:s + chunk], size) > thr
    q = protocols.upsample(protocol, neg[s:s + chunk], size) > thr
    count_p = np.count_nonzero(p, axis=(1, 2))
    count_q = np.count_nonzero(q, axis=(1, 2))
    inter = np.count_nonzero(p & q, axis=(1, 2))
    union = count_p + count_q - inter
    pia_pos[s:s + chunk] = count_p / area
    pia_neg[s:s + chunk] = count_q / area
    iou[s:s + chunk] = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
  return {"pia_negative": pia_neg, "pia_positive": pia_pos, "iou": iou, "threshold": thr,
          "max_positive": max_pos, "max_negative": max_neg}


def pia_aoc(pia: np.ndarray, weights: Optional[np.ndarray] = None) -> float:
  """vssl_eval's AOC of per-image pIA: the trapezoidal area of #(pIA <= 0.05 i) / N, i = 0..20.

  Args:
    pia: float [N], per-image pIA in [0, 1] (`negative_audio_metrics`).
    weights: non-negative integers [N], row multiplicities (default 1).

  Returns:
    The area in [0, 1] (higher: smaller highlighted areas); NaN with no image.
  """
  pia = np.asarray(pia, np.float64).reshape(-1)
  w = _counts(weights, len(pia)).astype(np.float64)
  total = w.sum()
  if total == 0:
    return float("nan")
  success = ((pia[None] <= AUC_THRESHOLDS[:, None]) * w[None]).sum(axis=1) / total
  return float(auc_of_success(success))
