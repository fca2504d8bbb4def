"""The embedded dataset rewritten in the published benchmarks' layouts, to evaluate them end to end.

  python -m embedded_dataset.layouts --layout {flickr,vggss,esc50,urbansound8k,folds} --out DIR
      [--source DIR] [--splits test] [--max-clips N]

`flickr`: the Flickr-SoundNet layout of LVS / EZ-VSL, one still frame and one sound per id:
`frames/<id>.jpg` (the clip's frame at its middle grid time, the frame a video clip is
evaluated on), `audio/<id>.wav` (the clip's whole soundtrack, 16-bit PCM), and for test clips
`Annotations/<id>.xml` with two annotators' boxes on the 256 x 256 scale: the frame's target
box, and the same box grown by 8 px on each side (the embedded clips have one true box; the
second annotator gives the annotator-count map its half-weight ring). Id lists
`train_ids.txt`, `val_ids.txt`, `flickr_test.csv` keep the embedded splits.

`vggss`: the VGG-SS layout, an evaluation set: `vggss.json` ({file, class, bbox}) over the
chosen splits' clips, each video linked (or copied) under `video/`, its bbox the target box at
the middle grid time.

`esc50` / `urbansound8k`: the audio-only layouts of L3's probe datasets, one sound per distinct
recording of the chosen splits (a recording's playback rates are kept, its repeats over
several pictures dropped): ESC-50's `meta/esc50.csv` + `audio/*.wav`, UrbanSound8K's
`metadata/UrbanSound8K.csv` + `audio/fold<K>/*.wav`. Folds keep each sound source whole, as
the real datasets' folds keep a source recording: a class's sources, in name order, are dealt
to folds 1, 2, ... in turn (5 folds for ESC-50, 10 for UrbanSound8K).

`folds`: the image probe's dataset, a folder of videos `fold<K>/<class>/<clip>.mp4` (linked),
one clip per distinct picture (plain or mirrored), in 5 folds that keep each picture source
whole.

The source is the embedded build (default: where the library looks for it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import wave

import cv2
import numpy as np

from data_pipeline import decode, pairs
from data_pipeline.clips import Clip, DataError
from data_pipeline.formats import embedded
from data_pipeline.formats import flickr as flickr_format

LAYOUTS = ("flickr", "vggss", "esc50", "urbansound8k", "folds")
SOUND_FOLDS = {"esc50": 5, "urbansound8k": 10}
FOLDS_LAYOUT = 5
SAMPLE_RATE = 48000
AUDIO_SECONDS = 1.0     # the nets' window: which grid time counts as the middle
GROWN_PX = 8            # the second annotator's box, grown on each side (256 scale)


def _rows(source: str, splits, max_clips: int) -> list[dict]:
  with open(os.path.join(source, embedded.LABELS)) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  rows = [r for r in rows if r["split"] in splits]
  return rows[:max_clips] if max_clips > 0 else rows


def _clip_id(row: dict) -> str:
  """test/dog_000.mp4 -> test_dog_000: unique over splits (clip names repeat across them)."""
  return os.path.splitext(row["file"])[0].replace("/", "_")


def _middle(row: dict, source: str) -> tuple[float, tuple]:
  """The middle grid time of a clip and its target box there."""
  path = os.path.join(source, row["file"])
  clip = Clip(path, path, float(row["duration"]), float(row["fps"]), SAMPLE_RATE, 1)
  t = pairs.middle_grid_time(clip, AUDIO_SECONDS)
  boxes = row["target_boxes"]
  return t, tuple(boxes[min(pairs.frame_index_at(clip, t), len(boxes) - 1)])


def _write_wav(path: str, signal: np.ndarray) -> None:
  with wave.open(path, "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(SAMPLE_RATE)
    f.writeframes(np.clip(signal * 32767, -32768, 32767).astype(np.int16).tobytes())


def _annotation(clip_id: str, box) -> str:
  scale = flickr_format.BOX_SCALE
  x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
  grown = (max(0, x0 - GROWN_PX), max(0, y0 - GROWN_PX),
           min(int(scale), x1 + GROWN_PX), min(int(scale), y1 + GROWN_PX))
  objects = "".join(
      f"<object><name>{clip_id}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
      f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>" for a, b, c, d in ((x0, y0, x1, y1),
                                                                              grown))
  return f"<annotation><filename>{clip_id}.jpg</filename>{objects}</annotation>\n"


def write_flickr(source: str, out: str, splits=("train", "val", "test"),
                 max_clips: int = 0) -> int:
  """Writes the Flickr-SoundNet layout; returns the number of images written."""
  for d in ("frames", "audio", "Annotations"):
    os.makedirs(os.path.join(out, d), exist_ok=True)
  lists = {"train": [], "val": [], "test": []}
  for row in _rows(source, splits, max_clips):
    path = os.path.join(source, row["file"])
    clip_id = _clip_id(row)
    t, box = _middle(row, source)
    frame = decode.read_frame(path, t)
    cv2.imwrite(os.path.join(out, "frames", f"{clip_id}.jpg"),
                cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    duration = float(row["duration"])
    _write_wav(os.path.join(out, "audio", f"{clip_id}.wav"),
               decode.read_audio(path, duration / 2, duration, SAMPLE_RATE))
    if row["split"] == "test":
      with open(os.path.join(out, "Annotations", f"{clip_id}.xml"), "w") as f:
        f.write(_annotation(clip_id, box))
    lists[row["split"]].append(clip_id)
  for name, split in (("train_ids.txt", "train"), ("val_ids.txt", "val"),
                      ("flickr_test.csv", "test")):
    with open(os.path.join(out, name), "w") as f:
      f.write("".join(f"{i}\n" for i in lists[split]))
  return sum(len(v) for v in lists.values())


def write_vggss(source: str, out: str, splits=("test",), max_clips: int = 0) -> int:
  """Writes the VGG-SS layout; returns the number of clips listed."""
  os.makedirs(os.path.join(out, "video"), exist_ok=True)
  items = []
  for row in _rows(source, splits, max_clips):
    src = os.path.join(source, row["file"])
    clip_id = _clip_id(row)
    dst = os.path.join(out, "video", clip_id + os.path.splitext(row["file"])[1])
    if not os.path.exists(dst):
      try:
        os.symlink(os.path.abspath(src), dst)
      except OSError:
        shutil.copyfile(src, dst)
    _, box = _middle(row, source)
    items.append({"file": clip_id, "class": row["label"], "bbox": [list(box)]})
  with open(os.path.join(out, "vggss.json"), "w") as f:
    json.dump(items, f)
  return len(items)


def _fold_rows(source: str, splits, max_clips: int, n_folds: int,
               side: str) -> list[tuple[dict, int]]:
  """(row, fold) of one clip per distinct recording (side "sound": a sound source at one
  playback rate) or picture (side "image": a picture, plain or mirrored), folds dealt by
  source within each class."""
  variant = "recording" if side == "sound" else "photo"
  rows, seen = [], set()
  for row in _rows(source, splits, 0):
    if row[variant] not in seen:
      seen.add(row[variant])
      rows.append(row)
  fold_of = {}
  for label in sorted({r["label"] for r in rows}):
    names = sorted({r["sources"][side] for r in rows if r["label"] == label})
    fold_of.update({(label, name): i % n_folds + 1 for i, name in enumerate(names)})
  out = [(r, fold_of[(r["label"], r["sources"][side])]) for r in rows]
  return out[:max_clips] if max_clips > 0 else out


def write_folds(source: str, out: str, splits=("train", "val", "test"),
                max_clips: int = 0) -> int:
  """Writes a video folder `fold<K>/<class>/<clip>.mp4` (links, or copies) of one clip per
  distinct picture, folds keeping each picture source whole: an image probe's dataset."""
  n = 0
  for row, fold in _fold_rows(source, splits, max_clips, FOLDS_LAYOUT, "image"):
    folder = os.path.join(out, f"fold{fold}", row["label"])
    os.makedirs(folder, exist_ok=True)
    dst = os.path.join(folder, _clip_id(row) + os.path.splitext(row["file"])[1])
    if not os.path.exists(dst):
      try:
        os.symlink(os.path.abspath(os.path.join(source, row["file"])), dst)
      except OSError:
        shutil.copyfile(os.path.join(source, row["file"]), dst)
    n += 1
  return n


def write_sounds(source: str, out: str, splits=("train", "val", "test"), max_clips: int = 0,
                 layout: str = "esc50") -> int:
  """Writes the ESC-50 or UrbanSound8K layout; returns the number of sounds written."""
  rows = _fold_rows(source, splits, max_clips, SOUND_FOLDS[layout], "sound")
  classes = sorted({r["label"] for r, _ in rows})
  table = []
  for row, fold in rows:
    clip_id, target = _clip_id(row), classes.index(row["label"])
    if layout == "esc50":
      name, folder = f"{fold}-{clip_id}-A-{target}.wav", os.path.join(out, "audio")
      table.append([name, fold, target, row["label"], "False", clip_id, "A"])
    else:
      name, folder = f"{clip_id}.wav", os.path.join(out, "audio", f"fold{fold}")
      table.append([name, clip_id, 0.0, float(row["duration"]), 1, fold, target,
                    row["label"]])
    os.makedirs(folder, exist_ok=True)
    duration = float(row["duration"])
    _write_wav(os.path.join(folder, name),
               decode.read_audio(os.path.join(source, row["file"]), duration / 2, duration,
                                 SAMPLE_RATE))
  meta = (os.path.join(out, "meta", "esc50.csv") if layout == "esc50"
          else os.path.join(out, "metadata", "UrbanSound8K.csv"))
  header = (["filename", "fold", "target", "category", "esc10", "src_file", "take"]
            if layout == "esc50" else ["slice_file_name", "fsID", "start", "end", "salience",
                                       "fold", "classID", "class"])
  os.makedirs(os.path.dirname(meta), exist_ok=True)
  with open(meta, "w", newline="") as f:
    csv.writer(f).writerows([header] + table)
  return len(table)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m embedded_dataset.layouts",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--layout", choices=LAYOUTS, required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--source", default=None,
                      help=f"the embedded build (default: {embedded.default_dir()})")
  parser.add_argument("--splits", default=None,
                      help="comma-separated splits (default: vggss test, the others all)")
  parser.add_argument("--max-clips", type=int, default=0, help="0 = every clip")
  args = parser.parse_args(argv)
  source = args.source or embedded.default_dir()
  if not embedded.is_built(source):
    print(f"error: no embedded build in {source}: run `python -m embedded_dataset` first",
          file=sys.stderr)
    return 1
  write = {"flickr": write_flickr, "vggss": write_vggss, "folds": write_folds}.get(
      args.layout, lambda *a: write_sounds(*a, layout=args.layout))
  splits = tuple(args.splits.split(",")) if args.splits else (
      ("test",) if args.layout == "vggss" else ("train", "val", "test"))
  try:
    n = write(source, args.out, splits, args.max_clips)
  except (DataError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {n} clips in the {args.layout} layout into {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
