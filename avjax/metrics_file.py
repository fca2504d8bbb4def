"""Reading WORKDIR/metrics.jsonl, the training log that avjax.train.metric_writer appends to.

Both the writer (which trims the rows past a resumed step) and the pictures (training curves)
read it through these two functions, so a line is judged the same way everywhere.
"""

import json
import os
from typing import Optional


def read_row(line: str) -> Optional[dict]:
  """One metrics.jsonl row as a dict; None for a blank, cut-short or foreign line."""
  try:
    row = json.loads(line)
  except ValueError:
    return None
  return row if isinstance(row, dict) and isinstance(row.get("step"), int) else None


def read_rows(path: str) -> list[dict]:
  """The rows of a metrics.jsonl in step order (empty when there is none).

  Lines a kill cut short are left out; a step logged twice (by a run stopped before saving
  it, then by its resume) counts once, as logged last, so the curves never zig-zag.
  """
  if not os.path.exists(path):
    return []
  rows: dict = {}
  with open(path) as f:
    for line in f:
      row = read_row(line)
      if row is not None:
        rows.setdefault(row["step"], {}).update(row)
  return [rows[step] for step in sorted(rows)]
