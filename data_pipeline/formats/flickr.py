"""Flickr-SoundNet in the LVS/EZ-VSL layout: one still frame and one sound per id.

`frames/<id>.jpg`, `audio/<id>.wav`, `Annotations/<id>.xml` (boxes from several annotators on a
256 x 256 scale) and id lists as text or CSV files (first cell of each line; the file name
says the split: a name with "test" -> test, "val" -> val, otherwise train). With a train list
only listed ids are used; with only test/val lists every other image is train; with no list
the split is assigned by hashing the id. Several annotators' boxes are merged into one
consensus box (the coordinate-wise median), the single target box of the clip's one frame.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Optional

import numpy as np

from data_pipeline.formats import common

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
BOX_SCALE = 256.0
_HEADERS = ("id", "file", "filename", "name", "video_id")


def find_dir(root: str, *names: str) -> Optional[str]:
  for name in names:
    path = os.path.join(root, name)
    if os.path.isdir(path):
      return path
  return None


def detect(root: str) -> bool:
  return bool(find_dir(root, "frames", "frame") and find_dir(root, "audio", "audios"))


def by_stem(folder: Optional[str], extensions) -> dict[str, str]:
  if folder is None:
    return {}
  return {os.path.splitext(os.path.basename(p))[0]: p
          for p in common.walk_files(folder, extensions)}


def read_boxes(xml_path: str, scale: float = BOX_SCALE) -> list[tuple[float, ...]]:
  """All boxes in an annotation file, normalised to [0, 1]."""
  boxes = []
  for node in ET.parse(xml_path).getroot().iter("bndbox"):
    coords = [float(node.findtext(k, "nan")) / scale for k in ("xmin", "ymin", "xmax", "ymax")]
    if all(np.isfinite(coords)):
      boxes.append(tuple(float(np.clip(c, 0.0, 1.0)) for c in coords))
  return boxes


def consensus_box(boxes) -> tuple[float, float, float, float]:
  """One box agreed by annotators: the coordinate-wise median."""
  return tuple(float(v) for v in np.median(np.asarray(boxes, np.float64), axis=0))


def _id_lists(root: str) -> dict[str, str]:
  """id -> split from the id list files in root."""
  split_of = {}
  for name in sorted(os.listdir(root)):
    path = os.path.join(root, name)
    if not (os.path.isfile(path) and name.lower().endswith((".txt", ".csv"))):
      continue
    lower = name.lower()
    split = "test" if "test" in lower else "val" if "val" in lower else "train"
    for row in common.read_csv_rows(path):
      if row and row[0] and not row[0].startswith("#") and row[0].lower() not in _HEADERS:
        split_of.setdefault(os.path.splitext(os.path.basename(row[0]))[0], split)
  return split_of


def read(root: str) -> common.Listing:
  images = by_stem(find_dir(root, "frames", "frame"), IMAGE_EXTENSIONS)
  audio = by_stem(find_dir(root, "audio", "audios"), AUDIO_EXTENSIONS)
  annotations = by_stem(find_dir(root, "Annotations", "annotations", "anno"), (".xml",))
  split_of = _id_lists(root)
  if "train" in split_of.values():
    ids = sorted(split_of)  # the lists say which ids to use
  else:
    # Only evaluation lists (or none): every other image is training data (none: hashed).
    ids = sorted(set(split_of) | set(images))
    if split_of:
      split_of = {i: split_of.get(i, "train") for i in ids}
  entries, skipped = [], []
  for clip_id in ids:
    if clip_id not in images or clip_id not in audio:
      what = "image" if clip_id not in images else "audio"
      skipped.append((images.get(clip_id) or audio.get(clip_id) or clip_id,
                      f"missing {what} file"))
      continue
    target = ()
    if clip_id in annotations:
      try:
        boxes = read_boxes(annotations[clip_id])
      except ET.ParseError:
        boxes = []
      if boxes:
        target = (consensus_box(boxes),)
    entries.append(common.Entry(path=images[clip_id], audio_path=audio[clip_id],
                                split=split_of.get(clip_id), target_boxes=target,
                                clip_id=clip_id))
  return common.Listing(entries, skipped)
