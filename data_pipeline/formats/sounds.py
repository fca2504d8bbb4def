"""A plain folder of sound files (no videos), searched recursively: `root/<class>/*.wav`.

Audio-only, for probes and embedding. As with a folder of videos, `root/<class>/...` gives the
class and `root/<split>/<class>/...` the split too; `root/fold<K>/<class>/...` gives the
cross-validation fold K instead. Without folds the probe deals clips into stratified folds.
"""

from __future__ import annotations

from data_pipeline import media
from data_pipeline.formats import common


def detect(root: str) -> bool:
  return (bool(common.walk_files(root, media.AUDIO_EXTENSIONS))
          and not common.walk_files(root, media.VIDEO_EXTENSIONS))


def read(root: str) -> common.Listing:
  return common.folder_listing(root, media.AUDIO_EXTENSIONS)
