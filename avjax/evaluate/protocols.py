"""cIoU "AP50" and AUC exactly as three published evaluation scripts compute them.

Sound-source localisation papers report the fraction of test images with cIoU >= 0.5 ("AP50",
"cIoU", "Precision") and the area under the success curve of cIoU thresholds (AUC), but the
published scripts differ in how a map becomes a binary prediction. Each is reproduced here,
selected by name (`PROTOCOLS`). What each script does, read from its public repository:

"lvs": Chen et al., Localizing Visual Sounds the Hard Way (CVPR 2021);
hche11/Localizing-Visual-Sounds-the-Hard-Way at 8fe8cbbf (test.py and utils.py as of 2dd2256,
"vggss"): test.py main() with utils.Evaluator.cal_CIOU, utils.normalize_img, utils.testset_gt.
  1. Map: the model's raw cosine-similarity map A [14 x 14] (model.AVENet, no sigmoid) is
     resized by cv2.resize(..., (224, 224), INTER_LINEAR): half-pixel centres, source
     coordinate (d + 0.5) * in / out - 0.5, clamped to the first / last sample at the borders.
     The script then min-max normalises the NEGATED map (normalize_img(-h): (v - min) /
     (max - min), no epsilon, left unchanged when max == min) and takes pred = 1 - that, which
     is the min-max normalised map (a constant map c becomes the constant 1 + c).
  2. Threshold: thr = np.sort(pred)[int(H * W / 2)]; pixels > thr are set to 1, then pixels < 1
     to 0, then cal_CIOU keeps pixels >= 0.5. Net rule: positive iff pred > thr or pred >= 1
     (the map's maximum always counts; a constant map is all positive iff 1 + c >= 1).
  3. Boxes: Flickr-SoundNet XML corners are integers on a 256-pixel scale, converted with
     int(224 * v / 256); VGG-SS boxes (metadata/vggss.json) are normalised, converted with
     int(224 * max(v, 0)). Each box fills temp[y0:y1, x0:x1] (end exclusive).
  4. Flickr: the annotators' box maps are summed, halved, and values > 1 set to 1 (one box
     0.5, two or more 1). VGG-SS: the boxes' maps are summed and values > 0 set to 1 (union).
  5. cIoU = sum(P * G) / (sum(G) + sum(P * [G == 0])), no epsilon (0 / 0 is NaN). AP50 =
     np.sum(ciou >= 0.5) / N; AUC = sklearn.metrics.auc (trapezoidal rule) of the success
     rates np.sum(ciou >= 0.05 * i) / N at the 21 thresholds 0.05 * i, i = 0..20.

"ezvsl": Mo & Morgado, Localizing Visual Sounds the Easy Way (ECCV 2022); stoneMo/EZ-VSL at
95ff5bff (test.py and utils.py as of 34270908, datasets.py as of 58cfd30c): test.validate()
with utils.Evaluator, utils.normalize_img, datasets.load_all_bboxes and datasets.bbox2gtmap.
  1. Map: the raw audio-visual map Savl = cosine / tau [7 x 7] (model.EZVSL, no sigmoid) is
     resized by torch F.interpolate(mode="bilinear", align_corners=True): source coordinate
     d * (in - 1) / (out - 1). Then normalize_img (min-max, no epsilon, unchanged if constant).
  2. Threshold: thr = np.sort(pred)[int(H * W * 0.5)]; positive iff pred >= thr (cal_CIOU), so
     at least half the pixels are positive; a constant map is all positive.
  3., 4. Boxes and ground truth as "lvs" (datasets.py): Flickr int(224 * v / 256), summed,
     halved, clipped to 1; VGG-SS (np.clip(v, 0, 1) * 224).astype(int), union.
  5. cIoU as "lvs"; AP50 = np.mean(ciou >= 0.5); AUC = sklearn.metrics.auc over the same 21
     thresholds 0.05 * i; the mean cIoU (Evaluator.finalize_cIoU) is np.mean(ciou).

"slavc": Mo & Morgado, A Closer Look at Weakly-Supervised Audio-Visual Source Localization
(NeurIPS 2022); stoneMo/SLAVC at 05b429c6 (utils.py and datasets.py as of 6fb2a49a): test.
validate() with utils.EvaluatorFull (update, finalize_stats, calc_precision_recall, cal_auc).
  1. Map: the raw map Savl = cosine / tau [7 x 7] (model.SLAVC, tau = 0.03) is resized by torch
     F.interpolate(mode="bicubic", align_corners=True): Keys cubic convolution with A = -0.75
     on the 4 samples floor(s) - 1 .. floor(s) + 2 (indices clamped to the map), source
     coordinate s = d * (in - 1) / (out - 1). No per-image normalisation: the default
     (--relative_prediction off, as in the published scripts) is the FIXED min-max
     (x - (-1 / tau)) / (1 / tau - (-1 / tau)), i.e. the cosine mapped from [-1, 1] to [0, 1].
  2. Threshold: the fixed value pred_thr = 0.5 (EvaluatorFull.update: positive iff
     score >= 0.5, i.e. cosine >= 0); the prediction may be empty or cover the whole image.
  3., 4. Boxes and ground truth exactly as "ezvsl" (datasets.py is the same code).
  5. cIoU as "lvs". Only images with at least one box count ("visible": len(bb) > 0 after
     dropping the -1 padding rows): AP50 = Precision-visible@50 of finalize_stats, i.e.
     #(ciou >= 0.5) / #visible (calc_precision_recall with every confidence above its
     -1000 threshold); AUC = cal_auc, sklearn.metrics.auc of mean(ciou >= 0.05 * i) over the
     visible images. (The progress line's precision_at_50 uses ciou > 0.5 instead;
     Precision-all@50, which counts box-less images as false positives, and the AP / max-F1
     part are not reproduced here.) EvaluatorFull prints no mean cIoU.

Where they differ: interpolation (cv2 half-pixel bilinear / align-corners bilinear /
align-corners bicubic), normalisation (per-image min-max for lvs and ezvsl, fixed [-1/tau,
1/tau] for slavc), the binarisation (lvs: > the sorted[n/2] value, plus the maximum; ezvsl: >=
that value; slavc: fixed 0.5 on the fixed-normalised score), constant maps (lvs: all positive
iff c >= 0, else none; ezvsl: all positive; slavc: all positive iff c >= 0) and slavc's
restriction of AP50 / AUC to images with boxes. Ground truth and the cIoU formula are shared.

This module's interface and its conversions:
  * maps [B, h, w] are the raw model scores the script would receive (slavc: cosine / tau; give
    the model's tau). Values are computed in float64; the scripts run in float32, so a pixel
    within float32 rounding of a median tie can fall the other way there. Interpolation is
    evaluated as x_base + sum_k w_k (x_k - x_base) (equal to sum_k w_k x_k since the weights
    sum to one) so that equal scores stay exactly equal after resizing.
  * boxes [B, K, 4] are normalised (x0, y0, x1, y1); a row with any negative coordinate is
    padding. consensus [B] names the dataset kind: 2 = Flickr-SoundNet (several annotators'
    boxes: v_256 = round(v * 256), the integer the XML holds, then int(size * v_256 / 256));
    1 = VGG-SS (the union; int(size * clip(v, 0, 1))). For a box on the 256 grid the two
    conversions give the same pixels; the rounding only absorbs off-grid noise. vggss.json
    has 14 corrupt corners (-2.9e16, all x1 or y1); the scripts clip them to 0, which empties
    the box: pass them clipped to 0, not negative, so that slavc still counts the box.
  * size generalises the scripts' hard-coded 224 (maps, boxes and the threshold index).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from avjax.evaluate.metrics import AUC_THRESHOLDS, auc_of_success

PROTOCOLS = ("lvs", "ezvsl", "slavc")
FLICKR, VGGSS = 2, 1  # the consensus codes: Flickr-SoundNet annotators' boxes, VGG-SS union
FLICKR_SCALE = 256  # Flickr-SoundNet annotations are on a 256-pixel scale
CUBIC_A = -0.75  # torch's bicubic (Keys) coefficient


def check_protocol(protocol: str) -> str:
  """Returns the protocol name, or raises ValueError naming the known ones."""
  if protocol not in PROTOCOLS:
    raise ValueError(f"unknown localisation protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
  return protocol


# ----------------------------------------------------------------------------- resizing

def _taps_cv2_linear(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
  """cv2 INTER_LINEAR taps: indices [n_out, 2] and weights [n_out, 2] (tap 0 is the base)."""
  src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
  lo = np.floor(src)
  frac = src - lo
  edge = (lo < 0) | (lo >= n_in - 1)
  lo = np.clip(lo, 0, n_in - 1).astype(np.int64)
  frac = np.where(edge, 0.0, frac)
  idx = np.stack([lo, np.minimum(lo + 1, n_in - 1)], axis=1)
  return idx, np.stack([1.0 - frac, frac], axis=1)


def _align_corners_source(n_in: int, n_out: int) -> np.ndarray:
  """Source coordinates d * (n_in - 1) / (n_out - 1) of torch's align_corners=True."""
  if n_out == 1:
    return np.zeros(1)
  return np.arange(n_out) * (n_in - 1) / (n_out - 1)


def _taps_torch_bilinear(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
  """torch bilinear, align_corners=True, taps (tap 0 is the base)."""
  src = _align_corners_source(n_in, n_out)
  lo = np.minimum(np.floor(src), n_in - 1).astype(np.int64)
  frac = src - lo
  idx = np.stack([lo, np.minimum(lo + 1, n_in - 1)], axis=1)
  return idx, np.stack([1.0 - frac, frac], axis=1)


def _cubic_near(x: np.ndarray) -> np.ndarray:
  """Keys kernel for |x| <= 1 (torch's cubic_convolution1)."""
  return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1


def _cubic_far(x: np.ndarray) -> np.ndarray:
  """Keys kernel for 1 < |x| < 2 (torch's cubic_convolution2)."""
  return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A


def _cubic_weights(t: np.ndarray) -> np.ndarray:
  """torch's get_cubic_upsample_coefficients for fractions t: [n, 4]."""
  rest = 1.0 - t
  return np.stack([_cubic_far(t + 1.0), _cubic_near(t), _cubic_near(rest),
                   _cubic_far(rest + 1.0)], axis=1)


def _taps_torch_bicubic(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
  """torch bicubic, align_corners=True, taps floor(s) - 1 .. floor(s) + 2 (tap 1 is the base)."""
  src = _align_corners_source(n_in, n_out)
  i0 = np.minimum(np.floor(src), n_in - 1).astype(np.int64)
  idx = np.clip(i0[:, None] + np.arange(-1, 3)[None], 0, n_in - 1)
  return idx, _cubic_weights(src - i0)


_RESIZERS = {"lvs": (_taps_cv2_linear, 0), "ezvsl": (_taps_torch_bilinear, 0),
             "slavc": (_taps_torch_bicubic, 1)}


def _apply_taps(x: np.ndarray, idx: np.ndarray, w: np.ndarray, base: int,
                axis: int) -> np.ndarray:
  """x_base + sum over the other taps k (ascending) of w_k * (x_k - x_base), along `axis`.

  Each difference x_k - x_base is formed once per distinct pair of source indices (at the
  input's resolution) and then spread to the output positions that use it.
  """
  shape = [1] * x.ndim
  shape[axis] = len(idx)
  out = np.take(x, idx[:, base], axis=axis)
  for k in range(idx.shape[1]):
    if k != base:
      pairs, where = np.unique(idx[:, [k, base]], axis=0, return_inverse=True)
      diff = np.take(x, pairs[:, 0], axis=axis) - np.take(x, pairs[:, 1], axis=axis)
      spread = np.take(diff, where.reshape(-1), axis=axis)
      spread *= w[:, k].reshape(shape)
      out += spread
  return out


def upsample(protocol: str, maps: np.ndarray, size: int = 224) -> np.ndarray:
  """Resizes raw maps [B, h, w] to [B, size, size] (float64) with the protocol's interpolation.

  Width first, then height (cv2's horizontal then vertical pass; torch's x then y).

  Args:
    protocol: one of PROTOCOLS.
    maps: float [B, h, w], raw model scores.
    size: output side.

  Returns:
    float64 [B, size, size].
  """
  make, base = _RESIZERS[check_protocol(protocol)]
  maps = np.asarray(maps, np.float64)
  wide = _apply_taps(maps, *make(maps.shape[2], size), base, axis=2)
  return _apply_taps(wide, *make(maps.shape[1], size), base, axis=1)


# ----------------------------------------------------------------------------- prediction

def _minmax_unless_constant(maps: np.ndarray) -> np.ndarray:
  """normalize_img per image, in place: (v - min) / (max - min); a constant map is unchanged."""
  lo = maps.min(axis=(1, 2), keepdims=True)
  span = maps.max(axis=(1, 2), keepdims=True) - lo
  flat = span == 0
  maps -= np.where(flat, 0.0, lo)  # x - 0 and x / 1 leave a constant map as it is
  maps /= np.where(flat, 1.0, span)
  return maps


def _median_value(pred: np.ndarray) -> np.ndarray:
  """Per image, np.sort(pred.flatten())[int(H * W / 2)], shaped [B, 1, 1]."""
  flat = pred.reshape(len(pred), -1)
  k = flat.shape[1] // 2
  return np.partition(flat, k, axis=1)[:, k][:, None, None]


def prediction_masks(protocol: str, maps: np.ndarray, size: int = 224,
                     tau: float = 0.03) -> np.ndarray:
  """The protocol's binary prediction of raw maps [B, h, w]: bool [B, size, size].

  Args:
    protocol: one of PROTOCOLS.
    maps: float [B, h, w], raw model scores (finite).
    size: side of the evaluation map.
    tau: "slavc" only, the temperature of the raw map (scores = cosine / tau); its fixed
      normalisation range is [-1 / tau, 1 / tau].

  Returns:
    bool [B, size, size].
  """
  pred = upsample(protocol, maps, size)
  if protocol == "lvs":
    _minmax_unless_constant(np.negative(pred, out=pred))  # normalize_img(-h) ...
    np.subtract(1.0, pred, out=pred)  # ... then 1 - it
    mask = pred > _median_value(pred)
    mask |= pred >= 1.0
    return mask
  if protocol == "ezvsl":
    _minmax_unless_constant(pred)
    return pred >= _median_value(pred)
  lo, hi = -1.0 / tau, 1.0 / tau  # slavc: av_min, av_max
  pred -= lo
  pred /= hi - lo
  return pred >= 0.5


# ----------------------------------------------------------------------------- ground truth

def box_counts(boxes: np.ndarray) -> np.ndarray:
  """Number of real (non-padding) boxes of each image: int [B]; boxes [B, K, 4] or [B, 4]."""
  boxes = np.asarray(boxes, np.float64)
  boxes = boxes[:, None] if boxes.ndim == 2 else boxes
  return np.all(boxes >= 0, axis=-1).sum(axis=1)


def _pixel_boxes(boxes: np.ndarray, consensus: np.ndarray, size: int) -> np.ndarray:
  """Normalised boxes [B, K, 4] -> the scripts' integer corners [B, K, 4] (slice bounds)."""
  flickr = np.rint(np.where(boxes >= 0, boxes, 0) * FLICKR_SCALE).astype(np.int64)
  flickr = size * flickr // FLICKR_SCALE  # int(224 * v_256 / 256), v_256 >= 0
  vggss = np.floor(np.clip(boxes, 0, 1) * size).astype(np.int64)  # int(224 * v)
  return np.where((consensus == FLICKR)[:, None, None], flickr, vggss)


def ground_truth_maps(protocol: str, boxes: np.ndarray, consensus: np.ndarray,
                      size: int = 224) -> np.ndarray:
  """The scripts' ground-truth maps: float64 [B, size, size] with values in {0, 0.5, 1}.

  The three protocols share this step (LVS utils.testset_gt, EZ-VSL / SLAVC
  datasets.bbox2gtmap): each box fills rows y0:y1 and columns x0:x1 of its integer corners;
  consensus 2 (Flickr) sums the boxes, halves and clips to 1, consensus 1 (VGG-SS) takes the
  union.

  Args:
    protocol: one of PROTOCOLS.
    boxes: float [B, K, 4] (or [B, 4]) normalised (x0, y0, x1, y1); rows with a negative
      coordinate are padding.
    consensus: int [B], 2 = Flickr-SoundNet, 1 = VGG-SS.
    size: side of the evaluation map.

  Returns:
    float64 [B, size, size].
  """
  check_protocol(protocol)
  boxes = np.asarray(boxes, np.float64)
  boxes = boxes[:, None] if boxes.ndim == 2 else boxes
  consensus = np.broadcast_to(np.asarray(consensus), (len(boxes),))
  if not np.isin(consensus, (FLICKR, VGGSS)).all():
    raise ValueError(f"consensus must be {FLICKR} (Flickr-SoundNet) or {VGGSS} (VGG-SS), got "
                     f"{sorted(set(np.unique(consensus).tolist()) - {FLICKR, VGGSS})}")
  px = _pixel_boxes(boxes, consensus, size)
  real = np.all(boxes >= 0, axis=-1)
  grid = np.arange(size)
  in_x = (grid >= px[..., 0:1]) & (grid < px[..., 2:3]) & real[..., None]  # [B, K, size]
  in_y = (grid >= px[..., 1:2]) & (grid < px[..., 3:4])
  count = np.matmul(np.swapaxes(in_y, 1, 2).astype(np.float64), in_x.astype(np.float64))
  cap = np.where(consensus == FLICKR, 2.0, 1.0)[:, None, None]
  np.minimum(count, cap, out=count)  # Flickr: min(count, 2) / 2 = min(count / 2, 1)
  count /= cap  # VGG-SS: min(count, 1), the union
  return count


# ----------------------------------------------------------------------------- cIoU

def ciou_per_image(protocol: str, maps: np.ndarray, boxes: np.ndarray, consensus: np.ndarray,
                   size: int = 224, *, tau: float = 0.03, chunk: int = 16) -> np.ndarray:
  """Per-image cIoU of raw maps against box ground truth, as the named script computes it.

  cIoU = sum(P * G) / (sum(G) + sum(P * [G == 0])) with P the protocol's binary prediction
  (`prediction_masks`) and G its ground-truth map (`ground_truth_maps`); NaN where both are
  empty (the scripts' 0 / 0).

  Args:
    protocol: one of PROTOCOLS.
    maps: float [B, h, w], raw model scores (finite; slavc: cosine / tau).
    boxes: float [B, K, 4] normalised (x0, y0, x1, y1); rows with a negative coordinate are
      padding.
    consensus: int [B], 2 = Flickr-SoundNet annotators' boxes (256-pixel native scale), 1 =
      VGG-SS boxes (their union).
    size: side of the evaluation map (the scripts: 224).
    tau: "slavc" only, the raw map's temperature.
    chunk: images processed at once.

  Returns:
    float64 [B].
  """
  check_protocol(protocol)
  maps = np.asarray(maps, np.float64)
  if maps.ndim != 3:
    raise ValueError(f"maps must be [B, h, w], got shape {maps.shape}")
  if not np.isfinite(maps).all():
    raise ValueError("maps must be finite")
  boxes = np.asarray(boxes, np.float64)
  boxes = boxes[:, None] if boxes.ndim == 2 else boxes
  consensus = np.broadcast_to(np.asarray(consensus), (len(maps),))
  if len(boxes) != len(maps):
    raise ValueError(f"{len(maps)} maps but {len(boxes)} box sets")
  out = np.empty(len(maps))
  for s in range(0, len(maps), chunk):
    pred = prediction_masks(protocol, maps[s:s + chunk], size, tau)
    gt = ground_truth_maps(protocol, boxes[s:s + chunk], consensus[s:s + chunk], size)
    inter = np.sum(gt, axis=(1, 2), where=pred)  # sums of halves: exact in any order
    outside = np.count_nonzero(np.logical_and(pred, gt == 0, out=pred), axis=(1, 2))
    denom = gt.sum(axis=(1, 2)) + outside
    with np.errstate(invalid="ignore", divide="ignore"):
      out[s:s + chunk] = inter / denom
  return out


def summary(protocol: str, cious: np.ndarray,
            num_boxes: Optional[np.ndarray] = None) -> dict[str, float]:
  """ciou_ap50, auc and ciou_mean of per-image cIoUs, as the named script computes them.

  All: success(t) = #(ciou >= t) / N at t = 0.05 * i (i = 0..20; a NaN cIoU fails every t),
  auc = its trapezoidal area (sklearn.metrics.auc), ciou_ap50 = success(0.5), ciou_mean =
  the plain mean (NaN if any cIoU is; EZ-VSL's finalize_cIoU; the LVS and SLAVC scripts print
  no mean). "slavc" counts only the images with at least one box (num_boxes > 0; all images
  when num_boxes is None); "lvs" and "ezvsl" count every image.

  Args:
    protocol: one of PROTOCOLS.
    cious: float [N], per-image cIoU (`ciou_per_image`).
    num_boxes: int [N], each image's number of boxes (`box_counts`), used by "slavc".

  Returns:
    {"ciou_ap50", "auc", "ciou_mean"}; NaN for each when no image counts.
  """
  check_protocol(protocol)
  cious = np.asarray(cious, np.float64).reshape(-1)
  if protocol == "slavc" and num_boxes is not None:
    cious = cious[np.asarray(num_boxes).reshape(-1) > 0]
  if len(cious) == 0:
    return {"ciou_ap50": float("nan"), "auc": float("nan"), "ciou_mean": float("nan")}
  success = (cious[None] >= AUC_THRESHOLDS[:, None]).sum(axis=1) / len(cious)
  auc = auc_of_success(success)
  return {"ciou_ap50": float(np.sum(cious >= 0.5) / len(cious)), "auc": float(auc),
          "ciou_mean": float(np.mean(cious))}
