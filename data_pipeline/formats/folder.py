"""A plain folder of videos, searched recursively.

Optional structure: `root/<class>/...` gives the class; `root/<split>/<class>/...` (split one of
train/val/test and their usual spellings) gives the split too, `root/fold<K>/<class>/...` a
cross-validation fold for probes. Without a split folder the split is assigned by hashing the
clip id.
"""

from __future__ import annotations

from data_pipeline import media
from data_pipeline.formats import common


def detect(root: str) -> bool:
  return bool(common.walk_files(root, media.VIDEO_EXTENSIONS))


def read(root: str) -> common.Listing:
  return common.folder_listing(root, media.VIDEO_EXTENSIONS)
