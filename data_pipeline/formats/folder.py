"""A plain folder of videos, searched recursively.

Optional structure: `root/<class>/...` gives the class; `root/<split>/<class>/...` (split one of
train/val/test and their usual spellings) gives the split too. Without a split folder the split
is assigned by hashing the clip id.
"""

from __future__ import annotations

import os

from data_pipeline import media
from data_pipeline.formats import common


def detect(root: str) -> bool:
  return bool(common.walk_files(root, media.VIDEO_EXTENSIONS))


def read(root: str) -> common.Listing:
  entries = []
  for path in common.walk_files(root, media.VIDEO_EXTENSIONS):
    parts = os.path.relpath(path, root).split(os.sep)[:-1]
    split = common.normalise_split(parts[0]) if parts else None
    if split:
      parts = parts[1:]
    labels = (parts[0],) if parts else ()
    clip_id = os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "/")
    entries.append(common.Entry(path=path, labels=labels, split=split, clip_id=clip_id))
  return common.Listing(entries)
