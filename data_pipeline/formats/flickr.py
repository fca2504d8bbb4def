"""Flickr-SoundNet in the LVS/EZ-VSL layout: one still frame and one sound per id.

`frames/<id>.jpg`, `audio/<id>.wav`, `Annotations/<id>.xml` (boxes from several annotators on a
256 x 256 scale) and id lists as text or CSV files (first cell of each line; the file name
says the split: a name with "test" -> test, "val" -> val, otherwise train). With a train list
only listed ids are used; with only test/val lists every other image is train; with no list
the split is assigned by hashing the id.

Boxes are read from `<bndbox>` or `<bbox>` elements: xmin, ymin, xmax, ymax by name, or else
the four children after the first (how the LVS / EZ-VSL evaluation reads `<bbox>`). Every
annotator's box is kept as the clip's `gt_boxes` with `gt_consensus` 2, so the localisation
ground truth is the published one (a pixel inside one annotator's box counts 0.5, inside two
or more 1); their coordinate-wise median is the clip's single target box (for pointing and
pictures).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Optional

import numpy as np

from data_pipeline import media
from data_pipeline.formats import common

BOX_SCALE = 256.0
ANNOTATOR_CONSENSUS = 2  # annotators whose boxes must cover a pixel for it to count fully
_BOX_TAGS = ("bndbox", "bbox")
_COORDS = ("xmin", "ymin", "xmax", "ymax")
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


def _number(text) -> float:
  try:
    return float(text)
  except (TypeError, ValueError):
    return float("nan")


def _box_coordinates(node: ET.Element) -> list[float]:
  """(xmin, ymin, xmax, ymax) of a box element: its children of those names, or else the four
  children after the first (the LVS / EZ-VSL reading of Flickr-SoundNet's `<bbox>`)."""
  named = [node.findtext(k) for k in _COORDS]
  texts = named if all(t is not None for t in named) else [c.text for c in list(node)[1:5]]
  return [_number(t) for t in texts] + [float("nan")] * (4 - len(texts))


def read_boxes(xml_path: str, scale: float = BOX_SCALE) -> list[tuple[float, ...]]:
  """All boxes in an annotation file (one per annotator), in file order, normalised to [0, 1]."""
  boxes = []
  for node in ET.parse(xml_path).getroot().iter():
    if node.tag not in _BOX_TAGS:
      continue
    coords = [c / scale for c in _box_coordinates(node)]
    if all(np.isfinite(coords)):
      boxes.append(tuple(float(np.clip(c, 0.0, 1.0)) for c in coords))
  return boxes


def consensus_box(boxes) -> tuple[float, float, float, float]:
  """One box agreed by annotators: the coordinate-wise median."""
  return tuple(float(v) for v in np.median(np.asarray(boxes, np.float64), axis=0))


def _annotation_boxes(xml_path: Optional[str]) -> list[tuple[float, ...]]:
  """The annotators' boxes of one image; none when it has no readable annotation file."""
  if xml_path is None:
    return []
  try:
    return read_boxes(xml_path)
  except ET.ParseError:
    return []


def _id_lists(root: str) -> dict[str, str]:
  """id -> split from the id list files in root."""
  split_of = {}
  for path in common.metadata_files(root, (".txt", ".csv")):
    lower = os.path.basename(path).lower()
    split = "test" if "test" in lower else "val" if "val" in lower else "train"
    for row in common.read_csv_rows(path):
      if row and row[0] and not row[0].startswith("#") and row[0].lower() not in _HEADERS:
        split_of.setdefault(os.path.splitext(os.path.basename(row[0]))[0], split)
  return split_of


def read(root: str) -> common.Listing:
  images = by_stem(find_dir(root, "frames", "frame"), media.IMAGE_EXTENSIONS)
  audio = by_stem(find_dir(root, "audio", "audios"), media.AUDIO_EXTENSIONS)
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
    boxes = _annotation_boxes(annotations.get(clip_id))
    entries.append(common.Entry(path=images[clip_id], audio_path=audio[clip_id],
                                split=split_of.get(clip_id), clip_id=clip_id,
                                target_boxes=(consensus_box(boxes),) if boxes else (),
                                gt_boxes=tuple(boxes), gt_consensus=ANNOTATOR_CONSENSUS))
  return common.Listing(entries, skipped)
