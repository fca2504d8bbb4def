"""The embedded dataset: `DIR/labels.jsonl`, one JSON object per clip, and where a build lives.

Each row gives `file` (relative to DIR), `split`, `label`, `target_boxes` (per frame) and
`distractor_boxes` (per distractor, per frame), all normalised to [0, 1] of the frame.

The clips are made by the builder (`python -m embedded_dataset`, run from the repository
root; the library never imports it) into `default_dir()`, a folder named with the dataset's
version under $AVJAX_DATA or ~/.cache/avjax. The builder writes everything into a temporary
folder and renames it into place, so a folder that holds `labels.jsonl` is a finished build.
"""

from __future__ import annotations

import json
import os

from data_pipeline.formats import common

LABELS = "labels.jsonl"

# Bumped whenever the clips change, so that a cached older build is not reused.
VERSION = 4


def cache_root() -> str:
  """The data cache the build and its sources go under: $AVJAX_DATA or ~/.cache/avjax."""
  return os.environ.get("AVJAX_DATA") or os.path.expanduser("~/.cache/avjax")


def dir_name() -> str:
  """The build's folder name in a cache, with the version: `embedded-v4`."""
  return f"embedded-v{VERSION}"


def default_dir() -> str:
  return os.path.join(cache_root(), dir_name())


def is_built(out_dir: str) -> bool:
  """Whether `out_dir` holds a finished build."""
  return os.path.exists(os.path.join(out_dir, LABELS))


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
