"""AudioSet segment CSVs: three `#` lines, then `YTID, start_seconds, end_seconds, "mid1,mid2"`.

`class_labels_indices.csv` (index, mid, display_name), when present, turns label ids into
names; `ontology.json`, when present, is returned as a dict keyed by id (for retrieval
relevance). The split comes from the CSV name: eval -> test, otherwise train.
"""

from __future__ import annotations

import json
import os

from data_pipeline.formats import common


def _is_segment_csv(path: str) -> bool:
  head = common.first_lines(path, 3)
  return head[0].startswith("#") and any("YTID" in line for line in head)


def _csv_files(root: str) -> list[str]:
  return common.metadata_files(root, ".csv", _is_segment_csv)


def detect(root: str) -> bool:
  return bool(_csv_files(root))


def _split_of(csv_name: str) -> str:
  name = csv_name.lower()
  if "eval" in name or "test" in name:
    return "test"
  return "val" if "val" in name else "train"


def _names(root: str) -> dict[str, str]:
  path = os.path.join(root, "class_labels_indices.csv")
  if not os.path.isfile(path):
    return {}
  rows = common.read_csv_rows(path)
  return {r[1]: r[2] for r in rows[1:] if len(r) >= 3}


def load_ontology(path: str) -> dict:
  """AudioSet's ontology.json as a dict keyed by node id."""
  with open(path) as f:
    items = json.load(f)
  return {item["id"]: item for item in items} if isinstance(items, list) else items


def _ontology(root: str):
  path = os.path.join(root, "ontology.json")
  return load_ontology(path) if os.path.isfile(path) else None


def row_labels(row: list[str]) -> list[str]:
  """The label ids of a segment row (the quoted list may be split over several cells)."""
  return [m.strip() for m in ",".join(row[3:]).split(",") if m.strip()]


def read(root: str) -> common.Listing:
  segments = common.Segments(root)
  names = _names(root)
  ontology = _ontology(root)
  if not names and ontology:
    names = {k: v.get("name", k) for k, v in ontology.items()}
  for csv_path in _csv_files(root):
    split = _split_of(os.path.basename(csv_path))
    for row in common.read_csv_rows(csv_path, skip_comments=True):
      if len(row) < 4:
        continue
      youtube_id, start, end = row[0], float(row[1]), float(row[2])
      mids = row_labels(row)
      clip_id = f"{youtube_id}_{int(round(start)):06d}"
      segments.add(youtube_id, start, end, seconds=end - start, clip_id=clip_id,
                   labels=tuple(names.get(m, m) for m in mids), split=split)
  return segments.listing(ontology)
