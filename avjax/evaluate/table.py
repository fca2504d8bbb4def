"""A console table of evaluation results, each metric beside its baseline.

Which result is the baseline of which metric is for each registered evaluator to say
(`Evaluator.baseline`); the table asks them all.
"""

from __future__ import annotations

from typing import Mapping, Optional, Union

from avjax.evaluate import registry
from avjax.evaluate.common import Chance


def _baseline(key: str, metrics: Mapping) -> Optional[Union[str, Chance]]:
  """The baseline a metric is read against: a fixed Chance line, or the key of a result that
  `metrics` holds; None if it has none."""
  for evaluator in registry.registered().values():
    base = evaluator.baseline(key)
    if base is not None:
      return base if isinstance(base, Chance) or (base in metrics and base != key) else None
  return None


def _baseline_key(key: str, metrics: Mapping) -> Optional[str]:
  """The result in `metrics` a metric is read against, when it holds one."""
  base = _baseline(key, metrics)
  return base if isinstance(base, str) else None


def _fmt(value, key: str = "") -> str:
  if isinstance(value, float) and "/num_" in key:
    return str(int(value))
  if isinstance(value, float):
    return f"{value:.4f}"
  return str(value)


def table_rows(metrics: Mapping[str, object]):
  """(rows, other, notes): rows are (metric, value, baseline) strings with each baseline beside
  its metric; other are the non-metric entries (step, split); notes the "note/..." entries.
  Every key of `metrics` appears in one of them."""
  shown_as_baseline = {_baseline_key(k, metrics) for k in metrics} - {None}
  rows, notes, other = [], [], []
  # Metrics read against a fixed chance line (AVC accuracy) lead: the headline numbers.
  against_chance = [k for k in metrics if isinstance(_baseline(k, metrics), Chance)]
  for key in against_chance:
    chance = _baseline(key, metrics)
    rows.append((key, _fmt(metrics[key]), f"{_fmt(chance.value)} ({chance.label})"))
  for key, value in metrics.items():
    if key in against_chance or key in shown_as_baseline:
      continue
    if key.startswith("note/"):
      notes.append((key, str(value)))
      continue
    base = _baseline_key(key, metrics)
    if base is not None:
      rows.append((key, _fmt(value), f"{_fmt(metrics[base])} ({base})"))
    elif isinstance(value, float) and "/" in key:
      rows.append((key, _fmt(value, key), ""))
    else:
      other.append((key, _fmt(value)))
  # Baselines whose metric is missing still get a row of their own.
  for key in sorted(shown_as_baseline):
    if not any(_baseline_key(k, metrics) == key for k in metrics if k not in shown_as_baseline):
      rows.append((key, _fmt(metrics[key]), ""))
  return rows, other, notes


def format_table(metrics: Mapping[str, object]) -> str:
  """Rows "metric | value | baseline (name)"; baselines shown beside their metric; notes and
  other entries (step, split) listed after the table. Every key of `metrics` appears."""
  rows, other, notes = table_rows(metrics)
  width = max([len(r[0]) for r in rows] + [len("metric")])
  lines = [f"{'metric':<{width}}  {'value':>8}  baseline", "-" * (width + 30)]
  lines += [f"{name:<{width}}  {value:>8}  {base}".rstrip() for name, value, base in rows]
  if other:
    lines += ["", *(f"  {k}: {v}" for k, v in other)]
  if notes:
    lines += ["", "notes:", *(f"  {k}: {v}" for k, v in notes)]
  return "\n".join(lines)
