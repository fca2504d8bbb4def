"""A plain folder of videos, searched recursively.

Optional structure: `root/<class>/...` gives the class; `root/<split>/<class>/...` (split one of
train/val/test and their usual spellings) gives the split too, `root/fold<K>/<class>/...` a
cross-validation fold for probes. Without a split folder the split is assigned by hashing the
clip id.
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
    split, fold, labels = common.folder_fields(root, path)
    clip_id = os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "/")
    entries.append(common.Entry(path=path, labels=labels, split=split, fold=fold,
                                clip_id=clip_id))
  return common.Listing(entries)
