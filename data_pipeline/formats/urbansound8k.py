"""UrbanSound8K: `metadata/UrbanSound8K.csv` (header slice_file_name, fsID, start, end,
salience, fold, classID, class) and `audio/fold1..10/<slice_file_name>`.

Audio-only: 8,732 slices of at most 4 s in 10 classes and 10 official folds, which keep the
slices of one Freesound recording (fsID) together (Clip.fold). The split is hashed.
"""

from __future__ import annotations

import os

from data_pipeline.formats import common

META = os.path.join("metadata", "UrbanSound8K.csv")
COLUMNS = ("slice_file_name", "fold", "class")


def detect(root: str) -> bool:
  return os.path.isfile(os.path.join(root, META))


def read(root: str) -> common.Listing:
  return common.sound_table(root, META, COLUMNS,
                            lambda name, fold: os.path.join("audio", f"fold{int(fold)}", name))
