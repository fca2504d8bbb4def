"""A console table of evaluation results: each metric with its 95% interval, its trivial
baselines and its gain over the best of them (with the paired interval of that gain).

Which results are the baselines of which metric is for each registered evaluator to say
(`Evaluator.baseline`); the table asks them all. Intervals and gains come from
results["scoring"] (avjax.evaluate.intervals.scoring).
"""

from __future__ import annotations

from typing import Mapping, Union

from avjax.evaluate import registry
from avjax.evaluate.common import Chance

Baseline = Union[str, Chance]


def baselines(key: str, metrics: Mapping) -> list[Baseline]:
  """What a metric is read against: a fixed Chance line, or the keys of the results in
  `metrics` that are its baselines; empty if it has none."""
  for evaluator in registry.registered().values():
    base = evaluator.baseline(key)
    if base is None:
      continue
    if isinstance(base, Chance):
      return [base]
    names = (base,) if isinstance(base, str) else tuple(base)
    return [b for b in names if b in metrics and b != key]
  return []


def lower_is_better(key: str) -> bool:
  """Whether a lower value of the metric is better (an evaluator says so)."""
  return any(key in ev.lower_is_better for ev in registry.registered().values())


def _baseline_keys(key: str, metrics: Mapping) -> list[str]:
  return [b for b in baselines(key, metrics) if isinstance(b, str)]


def _fmt(value, key: str = "") -> str:
  if isinstance(value, float) and "/num_" in key:
    return str(int(value))
  if isinstance(value, float):
    return f"{value:.4f}"
  return str(value)


def _interval(bounds, signed: bool = False) -> str:
  if not bounds:
    return ""
  f = "{:+.3f}" if signed else "{:.3f}"
  return "[" + ", ".join(f.format(v) for v in bounds) + "]"


def _short(base: str, key: str) -> str:
  """baseline/centre/loc/auc read against loc/auc -> centre; other names in full."""
  if base.endswith("/" + key):
    return base[:-len(key) - 1].split("/")[-1]
  return base


def _baseline_text(key: str, metrics: Mapping) -> str:
  bases = baselines(key, metrics)
  if len(bases) == 1:
    b = bases[0]
    if isinstance(b, Chance):
      return f"{_fmt(b.value)} ({b.label})"
    return f"{_fmt(metrics[b])} ({b})"
  return ", ".join(f"{_short(b, key)} {_fmt(metrics[b])}" for b in bases
                   if isinstance(b, str))


def _gain_text(key: str, metrics: Mapping) -> str:
  entry = (metrics.get("scoring") or {}).get(key) or {}
  if "gain" not in entry:
    return ""
  over = entry["gain_over"]
  over = _short(over, key) if isinstance(over, str) else over
  text = f"{entry['gain']:+.4f} {_interval(entry.get('gain_ci95'), signed=True)}".rstrip()
  return text + (f" (over {over})" if len(baselines(key, metrics)) > 1 else "")


def table_rows(metrics: Mapping[str, object]):
  """(rows, other, notes): rows are (metric, value, ci95, baselines, gain) strings, each
  metric's baselines beside it; other are the non-metric entries (step, split); notes the
  "note/..." entries. Every key of `metrics` but "scoring" appears in one of them."""
  shown_as_baseline = {b for k in metrics for b in _baseline_keys(k, metrics)}
  scoring = metrics.get("scoring") or {}
  rows, notes, other = [], [], []

  def row(key):
    ci = _interval((scoring.get(key) or {}).get("ci95"))
    return (key, _fmt(metrics[key], key), ci, _baseline_text(key, metrics),
            _gain_text(key, metrics))

  # Top-level metrics read against a fixed chance line (AVC accuracy) lead: the headline.
  against_chance = [k for k in metrics if "/" not in k
                    and any(isinstance(b, Chance) for b in baselines(k, metrics))]
  rows += [row(k) for k in against_chance]
  for key, value in metrics.items():
    if key in against_chance or key in shown_as_baseline or key == "scoring":
      continue
    if key.startswith("note/"):
      notes.append((key, str(value)))
    elif isinstance(value, float) and "/" in key:
      rows.append(row(key))
    else:
      other.append((key, _fmt(value)))
  # Baselines whose metric is missing still get a row of their own.
  for key in sorted(shown_as_baseline):
    if not any(key in _baseline_keys(k, metrics) for k in metrics if k not in shown_as_baseline):
      rows.append(row(key))
  return rows, other, notes


HEADER = ("metric", "value", "95% CI", "baseline", "gain over best baseline [95% CI]")


def format_table(metrics: Mapping[str, object]) -> str:
  """Rows "metric | value | 95% CI | baselines | gain [CI]"; notes and other entries (step,
  split) listed after the table. Every key of `metrics` appears (intervals as the CI column)."""
  rows, other, notes = table_rows(metrics)
  # Columns with nothing in them (no intervals without results["scoring"]) are left out.
  shown = [i for i in range(len(HEADER)) if i < 2 or any(r[i] for r in rows)]
  widths = {i: max(len(r[i]) for r in rows + [HEADER]) for i in shown}
  def line(cells):
    parts = [f"{cells[i]:>{widths[i]}}" if i == 1 else f"{cells[i]:<{widths[i]}}" for i in shown]
    return "  ".join(parts).rstrip()
  lines = [line(HEADER), "-" * len(line(HEADER))]
  lines += [line(r) for r in rows]
  if other:
    lines += ["", *(f"  {k}: {v}" for k, v in other)]
  if notes:
    lines += ["", "notes:", *(f"  {k}: {v}" for k, v in notes)]
  lines += ["", "95% CI: bootstrap over clips (all rows of a clip drawn together); gains are "
            "paired (the same draws for metric and baseline)."] if metrics.get("scoring") else []
  return "\n".join(lines)
