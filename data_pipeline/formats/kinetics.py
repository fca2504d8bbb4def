"""Kinetics: CSV files with header `label,youtube_id,time_start,time_end,split[,is_cc]`.

Clip files are found anywhere under the root, named `<youtube_id>_<start:06d>_<end:06d>.<ext>`
(the usual downloader naming), `<youtube_id>_<start:06d>.<ext>` or `<youtube_id>.<ext>`.
"""

from __future__ import annotations

from data_pipeline.formats import common


def _has_kinetics_header(path: str) -> bool:
  header = common.first_lines(path, 1)[0].lower()
  return "youtube_id" in header and "time_start" in header


def _csv_files(root: str) -> list[str]:
  return common.metadata_files(root, ".csv", _has_kinetics_header)


def detect(root: str) -> bool:
  return bool(_csv_files(root))


def read(root: str) -> common.Listing:
  segments = common.Segments(root)
  for csv_path in _csv_files(root):
    rows = common.read_csv_rows(csv_path)
    header = [h.lower() for h in rows[0]]
    col = {name: header.index(name) for name in header}
    for row in rows[1:]:
      if len(row) < len(header):
        continue
      youtube_id = row[col["youtube_id"]]
      start, end = float(row[col["time_start"]]), float(row[col["time_end"]])
      label = row[col["label"]] if "label" in col else ""
      split = common.normalise_split(row[col["split"]]) if "split" in col else None
      clip_id = f"{youtube_id}_{int(round(start)):06d}_{int(round(end)):06d}"
      segments.add(youtube_id, start, end, seconds=end - start, clip_id=clip_id,
                   labels=(label,) if label else (), split=split)
  return segments.listing()
