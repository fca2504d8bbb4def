"""The embedded dataset: real cut-out photos with their own sounds, composed into short videos.

Each clip shows the sounding object's photo cut-out and one or two silent distractors of other
classes drifting slowly over a real background photo, each inside its own part of the frame
(the sounding object in one half, chosen at random, so the frame's centre tells nothing); the audio track is the object's recording
(or a soundfont phrase for instruments without one), looped with random offsets and gains.
Boxes come from the cut-outs' alpha masks, so they are exact.

Splits (v4) are made of sources, not of clips: each class's distinct pictures, recordings
and the background photos are dealt to train, val and test (`embedded_dataset.sources` says
what a source is), and a clip uses only its split's sources, distractors included. So no
picture (nor its mirror image), no recording (nor a rate-shifted or re-cut take of it) and
no background of a test clip is seen in training. Test holds 4 clips per class: every pair
of its 2 test pictures and 2 test recordings. Each labels.jsonl row names its `sources`.

CLI: python -m embedded_dataset [--out DIR] [--seed S] (from the repository root). The folder's
name and what marks a finished build are the reader's (data_pipeline.formats.embedded).
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import shutil
import sys
import time
from typing import Optional

import av
import cv2
import numpy as np
import tqdm

from data_pipeline.clips import DataError
from data_pipeline.formats import embedded as layout
from embedded_dataset import sources as src

SIZE, FPS, SECONDS = 256, 8, 3.0
AREA_RANGE = (0.15, 0.35)  # box area as a fraction of the frame (before the region cap)
_RATES = (0.92, 1.0, 1.08)
SPLITS = ("train", "val", "test")
# Clips per class. Test: every pair of the class's 2 test pictures and 2 test recordings.
_SPLIT_CLIPS = {"train": 40, "val": 2, "test": 4}
_MEDIA: dict = {}  # filled before the worker pool forks


def _cutout(rgba: np.ndarray, name: str) -> np.ndarray:
  """The picture cropped to its alpha mask."""
  ys, xs = np.nonzero(rgba[..., 3] > 127)
  if not len(ys):
    raise DataError(f"image {name} is fully transparent; delete the cache and rebuild")
  return rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _scaled(rgba: np.ndarray, area: float, flip: bool, max_w: int = SIZE,
            max_h: int = SIZE) -> tuple[np.ndarray, tuple[int, int, int, int]]:
  """Scales a cut-out so its box covers `area` of the frame (at most 95% of max_w x max_h);
  returns it and its mask box."""
  h, w = rgba.shape[:2]
  s = np.sqrt(area * SIZE * SIZE / (h * w))
  s = min(s, 0.95 * max_h / h, 0.95 * max_w / w)
  out = cv2.resize(rgba, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
  if flip:
    out = out[:, ::-1]
  ys, xs = np.nonzero(out[..., 3] > 127)
  return out, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def _track(rng, w: int, h: int, n: int, region=(0, 0, SIZE, SIZE)) -> np.ndarray:
  """Top-left positions per frame inside region (x0, y0, x1, y1): random start, slow drift
  that bounces off the region's edges."""
  rx0, ry0, rx1, ry1 = region
  lo = np.array([rx0, ry0], float)
  hi = np.array([max(rx0, rx1 - w), max(ry0, ry1 - h)], float)
  pos = rng.uniform(lo, hi)
  vel = rng.uniform(-2.0, 2.0, size=2)
  out = []
  for _ in range(n):
    out.append(np.round(pos).astype(int))
    pos = pos + vel
    for k in range(2):
      if not lo[k] <= pos[k] <= hi[k]:
        vel[k] = -vel[k]
        pos[k] = np.clip(pos[k], lo[k], hi[k])
  return np.array(out)


def _regions(rng, count: int) -> list:
  """Disjoint regions (x0, y0, x1, y1) for `count` objects, the last one the sounding object's.

  The frame is split in two halves (left/right or top/bottom, at random) and the sounding
  object gets one of them; two distractors share the other half, split the other way. So the
  sounding object never covers the frame's centre as a rule, and a centre prior cannot find it.
  """
  half = SIZE // 2
  vertical = bool(rng.integers(2))
  halves = [(0, 0, half, SIZE), (half, 0, SIZE, SIZE)] if vertical else \
           [(0, 0, SIZE, half), (0, half, SIZE, SIZE)]
  target_half = int(rng.integers(2))
  target, other = halves[target_half], halves[1 - target_half]
  if count <= 2:
    return [other][:count - 1] + [target]
  x0, y0, x1, y1 = other
  if vertical:  # split the other half top/bottom
    mid = (y0 + y1) // 2
    parts = [(x0, y0, x1, mid), (x0, mid, x1, y1)]
  else:
    mid = (x0 + x1) // 2
    parts = [(x0, y0, mid, y1), (mid, y0, x1, y1)]
  return parts[:count - 1] + [target]


def _paste(frame: np.ndarray, rgba: np.ndarray, x: int, y: int) -> None:
  h, w = rgba.shape[:2]
  a = rgba[..., 3:].astype(np.float32) / 255.0
  region = frame[y:y + h, x:x + w].astype(np.float32)
  frame[y:y + h, x:x + w] = (a * rgba[..., :3] + (1 - a) * region + 0.5).astype(np.uint8)


def _soundtrack(rng, wav: np.ndarray, rate: float) -> np.ndarray:
  n = int(SECONDS * src.SAMPLE_RATE)
  idx = np.arange(0, len(wav) - 1, rate)
  wav = np.interp(idx, np.arange(len(wav)), wav).astype(np.float32)
  out = np.zeros(n, np.float32)
  t = -int(rng.integers(0, len(wav)))  # start mid-recording sometimes
  while t < n:
    seg = wav * rng.uniform(0.5, 1.0)
    a, b = max(t, 0), min(t + len(seg), n)
    if b > a:
      out[a:b] += seg[a - t:b - t]
    t += len(seg) + int(rng.uniform(0.05, 0.5) * src.SAMPLE_RATE)
  return np.clip(out * rng.uniform(0.5, 0.9), -1, 1)


def _make_clip(job: dict) -> dict:
  """Renders one clip to `job['path']` and returns its label row."""
  rng = np.random.default_rng(job["seed"])
  nframes = int(SECONDS * FPS)
  bg = cv2.cvtColor(cv2.imread(job["background"]), cv2.COLOR_BGR2RGB)
  if job.get("flat") is not None:
    bg = np.empty_like(bg)
    bg[:] = job["flat"]
  side = int(min(bg.shape[:2]) * rng.uniform(0.6, 1.0))
  y0, x0 = rng.integers(0, bg.shape[0] - side + 1), rng.integers(0, bg.shape[1] - side + 1)
  bg = cv2.resize(bg[y0:y0 + side, x0:x0 + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
  objects = []  # (rgba, positions, mask box); distractors first so the target is on top
  placed = job["distractors"] + [job["photo"]]
  for (photo, flip), region in zip(placed, _regions(rng, len(placed))):
    rgba, box = _scaled(_MEDIA["cutouts"][photo], rng.uniform(*AREA_RANGE), flip,
                        region[2] - region[0], region[3] - region[1])
    objects.append((rgba, _track(rng, rgba.shape[1], rgba.shape[0], nframes, region), box))
  frames, boxes = [], [[] for _ in objects]
  for f in range(nframes):
    frame = bg.copy()
    for k, (rgba, pos, (bx0, by0, bx1, by1)) in enumerate(objects):
      x, y = pos[f]
      _paste(frame, rgba, x, y)
      boxes[k].append([round((x + bx0) / SIZE, 5), round((y + by0) / SIZE, 5),
                       round((x + bx1) / SIZE, 5), round((y + by1) / SIZE, 5)])
    frames.append(frame)
  rec_name, rate = job["recording"]
  audio = _soundtrack(rng, _MEDIA["recordings"][rec_name], rate)
  _encode(job["path"], frames, audio)
  return {"file": job["file"], "split": job["split"], "label": job["label"], "fps": FPS,
          "duration": SECONDS, "target_boxes": boxes[-1], "distractor_boxes": boxes[:-1],
          "distractor_labels": job["distractor_labels"],
          "photo": job["photo"][0] + ("#mirrored" if job["photo"][1] else ""),
          "recording": f"{rec_name}@rate{rate}", "background": job["background_name"],
          "sources": job["sources"]}


def _encode(path: str, frames: list, audio: np.ndarray) -> None:
  with av.open(path, "w") as out:
    vs = out.add_stream("libx264", rate=FPS, options={"crf": "20", "threads": "1"})
    vs.width, vs.height, vs.pix_fmt = SIZE, SIZE, "yuv420p"
    aus = out.add_stream("aac", rate=src.SAMPLE_RATE, layout="mono")
    for img in frames:
      out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
    out.mux(vs.encode())
    step = 1024
    for i in range(0, len(audio), step):
      chunk = audio[i:i + step][None, :]
      frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="flt", layout="mono")
      frame.sample_rate, frame.pts = src.SAMPLE_RATE, i
      out.mux(aus.encode(frame))
    out.mux(aus.encode())


def _deal(rng, sources: list, image: bool) -> dict[str, list]:
  """Assigns a class's sources to splits: 2 to test, 1 to val when there are 5 or more, the
  rest to train (so a class with 4 keeps 2 for training). Real photos and drawings
  (recordings and soundfont renders) are dealt in turn, so test holds one of each where it
  can; training keeps a real photo when the class has one."""
  first = [s for s in sources if s.kind in ("photo", "recording")]
  second = [s for s in sources if s not in first]
  first = [first[i] for i in rng.permutation(len(first))]
  second = [second[i] for i in rng.permutation(len(second))]
  order = []
  for k in range(max(len(first), len(second))):
    order += first[k:k + 1] + second[k:k + 1]
  n_val = 1 if len(order) >= 5 else 0
  out = {"test": order[:2], "val": order[2:2 + n_val], "train": order[2 + n_val:]}
  if image and not any(s.kind == "photo" for s in out["train"]):
    held = next((s for s in out["test"] + out["val"] if s.kind == "photo"), None)
    if held is not None and out["train"]:
      for split in ("test", "val"):
        if held in out[split]:
          out[split][out[split].index(held)] = out["train"][0]
      out["train"][0] = held
  return out


def _backgrounds(rng, bgs: list[str]) -> dict[str, list[str]]:
  """The background photos of each split (disjoint): 4 for test, 2 for val, the rest train."""
  order = [bgs[i] for i in rng.permutation(len(bgs))]
  if len(order) < 3:
    return {split: order for split in SPLITS}  # tests' tiny builds: nothing to hold out
  n_test = min(4, len(order) // 3)
  n_val = min(2, max(1, len(order) // 6))
  return {"test": order[:n_test], "val": order[n_test:n_test + n_val],
          "train": order[n_test + n_val:]}


def plan_splits(seed: int, labels: list[str]) -> dict[str, dict[str, dict[str, list]]]:
  """label -> {"images"|"sounds": split -> sources}: which sources each split may use."""
  rng = np.random.default_rng([seed, 0x5A1])
  out = {}
  for label in labels:
    images, sounds = src.class_sources(label)
    out[label] = {"images": _deal(rng, images, True), "sounds": _deal(rng, sounds, False)}
  return out


def _variant(rng, source) -> str:
  return source.variants[int(rng.integers(len(source.variants)))]


def _plan(seed: int, labels: list[str], bgs: list[str], clips_per_split: dict) -> list[dict]:
  """Chooses every clip's image, sound, distractors and background, each from its split's
  sources only: no picture, recording or background is shared between splits. Test clips
  of a class go through every pair of its two test pictures and two test recordings."""
  rng = np.random.default_rng(seed)
  splits = plan_splits(seed, labels)
  backgrounds = _backgrounds(rng, bgs)
  jobs = []
  for split, n in clips_per_split.items():
    usable = [l for l in labels if splits[l]["images"][split] and splits[l]["sounds"][split]]
    for ci, label in enumerate(labels):
      images, sounds = splits[label]["images"][split], splits[label]["sounds"][split]
      if not images or not sounds:
        continue  # e.g. no val picture for a class with 3
      for i in range(n):
        if split == "test":
          image, sound = images[i % len(images)], sounds[(i // len(images)) % len(sounds)]
        else:
          image = images[int(rng.integers(len(images)))]
          sound = sounds[int(rng.integers(len(sounds)))]
        takes = _MEDIA["takes"][_variant(rng, sound)]
        others = [l for l in (usable if len(usable) > 1 else labels) if l != label]
        k = 1 + int(rng.random() < 0.3) if len(others) > 1 else 1
        dlabels = [others[j] for j in rng.choice(len(others), size=k, replace=False)]
        distractors, dsources = [], []
        for d in dlabels:
          pool = splits[d]["images"][split] or splits[d]["images"]["train"]
          source = pool[int(rng.integers(len(pool)))]
          distractors.append((_variant(rng, source), bool(rng.integers(2))))
          dsources.append(source.name)
        b = backgrounds[split][int(rng.integers(len(backgrounds[split])))]
        name = f"{split}/{label}_{i:03d}.mp4"
        jobs.append({"file": name, "split": split, "label": label,
                     "photo": (_variant(rng, image), bool(rng.integers(2))),
                     "recording": (takes[int(rng.integers(len(takes)))],
                                   float(_RATES[int(rng.integers(len(_RATES)))])),
                     "distractors": distractors, "distractor_labels": dlabels,
                     "background": b, "background_name": _background_name(b),
                     "sources": {"image": image.name, "sound": sound.name,
                                 "background": _background_name(b), "distractors": dsources},
                     "seed": [seed, ci, i, SPLITS.index(split)]})
  return jobs


def _background_name(path: str) -> str:
  return "tuxpaint:templates/" + os.path.basename(path)


def build(out_dir: str, seed: int = 0, *, classes: Optional[int] = None,
          clips_per_split: Optional[dict] = None, workers: Optional[int] = None,
          quiet: bool = False, flat_background: Optional[tuple] = None) -> dict:
  """Builds the dataset into `out_dir` (atomically); returns a summary dict.

  Args:
    out_dir: where the dataset goes; replaced if it exists.
    seed: the same seed gives the same labels.jsonl and the same pixels.
    classes: use only the first this many classes (small test builds).
    clips_per_split: clips per class in each split (default 40/2/2).
    workers: build processes (default: all cores).
    quiet: no progress bar.
    flat_background: an RGB colour to use instead of the photos (tests of the boxes).
  """
  start = time.time()
  out_dir = os.path.abspath(out_dir)
  root = src.fetch_sources(layout.cache_root())
  labels = list(src.CLASSES)[:classes] if classes else list(src.CLASSES)
  if len(labels) < 2:
    raise DataError("the embedded dataset needs at least 2 classes (one target, one distractor)")
  _MEDIA.clear()
  _MEDIA.update(cutouts={}, recordings={}, takes={})
  for label in labels:
    images, sounds = src.class_sources(label)
    for source in images:
      for v in source.variants:
        _MEDIA["cutouts"][v] = _cutout(src.load_image(root, v), v)
    for source in sounds:
      for v in source.variants:
        takes = src.load_sound(root, v)
        _MEDIA["takes"][v] = [name for name, _ in takes]
        _MEDIA["recordings"].update(takes)
  jobs = _plan(seed, labels, src.backgrounds(root), clips_per_split or _SPLIT_CLIPS)
  tmp = out_dir + f".tmp{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  for split in SPLITS:
    os.makedirs(os.path.join(tmp, split))
  for job in jobs:
    job["path"] = os.path.join(tmp, job["file"])
    job["flat"] = flat_background
  try:
    if "jax" in sys.modules:
      # Forking a process that runs JAX's threads can deadlock the child: build in-process.
      rows = [_make_clip(job) for job in tqdm.tqdm(jobs, disable=quiet, desc="embedded clips",
                                                   unit="clip")]
    else:
      # fork: the workers inherit the decoded media (_MEDIA) instead of loading it again.
      ctx = multiprocessing.get_context("fork")
      with ctx.Pool(workers or min(len(jobs), os.cpu_count() or 1)) as pool:
        rows = list(tqdm.tqdm(pool.imap(_make_clip, jobs), total=len(jobs), disable=quiet,
                              desc="embedded clips", unit="clip"))
    with open(os.path.join(tmp, layout.LABELS), "w") as f:
      for row in rows:
        f.write(json.dumps(row) + "\n")
    with open(os.path.join(tmp, "NOTICE"), "w") as f:
      f.write(src.NOTICE)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  counts = collections.Counter((r["split"], r["label"]) for r in rows)
  return {"dir": out_dir, "seconds": time.time() - start, "clips": len(rows),
          "per_split": dict(collections.Counter(r["split"] for r in rows)),
          "per_class": {l: {s: counts[(s, l)] for s in SPLITS} for l in labels}}


def ensure_embedded(out_dir: Optional[str] = None, seed: int = 0) -> str:
  """Returns the embedded dataset dir (default: the reader's `default_dir()`), building it
  first when it holds no finished build."""
  out_dir = out_dir or layout.default_dir()
  if layout.is_built(out_dir):
    return out_dir
  with src.file_lock(os.path.abspath(out_dir) + ".lock"):
    if not layout.is_built(out_dir):  # built while we waited?
      build(out_dir, seed)
  return out_dir
