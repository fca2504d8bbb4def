"""A plain folder of sound files (no videos), searched recursively: `root/<class>/*.wav`.

Audio-only, for probes and embedding. As with a folder of videos, `root/<class>/...` gives the
class and `root/<split>/<class>/...` the split too; `root/fold<K>/<class>/...` gives the
cross-validation fold K instead. Without folds the probe deals clips into stratified folds.
"""

from __future__ import annotations

import os

from data_pipeline import media
from data_pipeline.formats import common


def detect(root: str) -> bool:
  return (bool(common.walk_files(root, media.AUDIO_EXTENSIONS))
          and not common.walk_files(root, media.VIDEO_EXTENSIONS))


def read(root: str) -> common.Listing:
  entries = []
  for path in common.walk_files(root, media.AUDIO_EXTENSIONS):
    split, fold, labels = common.folder_fields(root, path)
    clip_id = os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "/")
    entries.append(common.Entry(path=path, labels=labels, split=split, fold=fold,
                                clip_id=clip_id))
  return common.Listing(entries)
