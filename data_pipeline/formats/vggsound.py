"""VGGSound: `vggsound.csv` without a header, rows `youtube_id, start_seconds, label, split`.

Clip files are found anywhere under the root, named `<youtube_id>_<start:06d>.<ext>` (trimmed
10 s clips) or `<youtube_id>.<ext>` (full videos, read from start_seconds on).
"""

from __future__ import annotations

from data_pipeline.formats import common

SEGMENT_SECONDS = 10.0


def _csv_files(root: str) -> list[str]:
  return common.metadata_files(root, ".csv", _looks_like, named="vggsound.csv")


def _looks_like(path: str) -> bool:
  rows = common.read_csv_rows(path)[:5]
  return bool(rows) and all(
      len(r) == 4 and common.normalise_split(r[3]) and _is_number(r[1]) for r in rows)


def _is_number(text: str) -> bool:
  try:
    float(text)
    return True
  except ValueError:
    return False


def detect(root: str) -> bool:
  return bool(_csv_files(root))


def read(root: str) -> common.Listing:
  segments = common.Segments(root)
  for csv_path in _csv_files(root):
    for row in common.read_csv_rows(csv_path):
      if len(row) < 4 or not _is_number(row[1]):
        continue
      youtube_id, start, label, split = row[0], float(row[1]), row[2], row[3]
      clip_id = f"{youtube_id}_{int(round(start)):06d}"
      segments.add(youtube_id, start, None, seconds=SEGMENT_SECONDS, clip_id=clip_id,
                   labels=(label,), split=common.normalise_split(split))
  return segments.listing()
