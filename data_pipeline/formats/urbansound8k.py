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
  rows = common.read_csv_rows(os.path.join(root, META))
  column = common.header_columns(rows[0] if rows else [], COLUMNS, META)
  entries, skipped = [], []
  for row in rows[1:]:
    name, fold, label = (row[column[c]] for c in COLUMNS)
    path = os.path.join(root, "audio", f"fold{int(fold)}", name)
    if not os.path.isfile(path):
      skipped.append((path, "missing file"))
      continue
    entries.append(common.Entry(path=path, labels=(label,), fold=int(fold),
                                clip_id=os.path.splitext(name)[0]))
  return common.Listing(entries, skipped)
