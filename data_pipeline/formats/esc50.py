"""ESC-50: `meta/esc50.csv` (header filename, fold, target, category, ...) and `audio/*.wav`.

Audio-only: 2,000 clips of 5 s in 50 classes, dealt by the dataset's authors into 5 folds that
keep the pieces of one source recording together. The folds are kept (Clip.fold) for the
probe's cross-validation; the split is hashed, as no split is published.
"""

from __future__ import annotations

import os

from data_pipeline.formats import common

META = os.path.join("meta", "esc50.csv")
COLUMNS = ("filename", "fold", "category")


def detect(root: str) -> bool:
  return os.path.isfile(os.path.join(root, META))


def read(root: str) -> common.Listing:
  return common.sound_table(root, META, COLUMNS, lambda name, fold: os.path.join("audio", name))
