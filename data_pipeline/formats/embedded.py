"""The embedded dataset: `DIR/labels.jsonl`, one JSON object per clip (see data_pipeline.embedded).

Each row gives `file` (relative to DIR), `split`, `label`, `target_boxes` (per frame) and
`distractor_boxes` (per distractor, per frame), all normalised to [0, 1] of the frame.
"""

from __future__ import annotations

import json
import os

from data_pipeline.formats import common

LABELS = "labels.jsonl"


def detect(root: str) -> bool:
  return os.path.isfile(os.path.join(root, LABELS))


def read(root: str) -> common.Listing:
  entries = []
  with open(os.path.join(root, LABELS)) as f:
    for line in f:
      if not line.strip():
        continue
      row = json.loads(line)
      path = os.path.join(root, row["file"])
      entries.append(common.Entry(
          path=path,
          labels=(row["label"],) if row.get("label") else (),
          split=common.normalise_split(row.get("split", "")) or None,
          target_boxes=tuple(tuple(map(float, b)) for b in row.get("target_boxes", ())),
          distractor_boxes=tuple(tuple(tuple(map(float, b)) for b in track)
                                 for track in row.get("distractor_boxes", ())),
          clip_id=os.path.splitext(row["file"])[0]))
  return common.Listing(entries)
