"""95% intervals from a bootstrap over clips, and each metric's gain over its best trivial baseline.

An evaluator yields a metric it can resample as `PerClip(terms, clips, reduce)`: each scored
row's terms (float [N, d]), the clip each row comes from, and `reduce`, which turns the mean of
the terms ([..., d]) into the metric ([...]). Every metric here is such a function of means:
an accuracy is the mean of 0/1 terms, mean nDCG of per-query nDCGs, AP50 and the success AUC
of the indicators cIoU >= t over the 21 thresholds. A metric that is not (average precision)
is a `ByRowWeights`: a statistic of row multiplicities, recomputed per draw.

The bootstrap draws whole clips with replacement (all rows of a clip move together: the frames
of one clip are not independent samples), `samples` times, seeded. A draw is a count per clip,
so a resampled mean is sum(count * clip sums) / sum(count * clip rows), exact for any metric
of this form and cheap for large test sets. Every metric is resampled with the same draws, so
the interval of a gain (metric minus baseline) is paired. The interval is the 2.5 and 97.5
percentiles of the resampled values.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np


def _first(means: np.ndarray) -> np.ndarray:
  return means[..., 0]


@dataclasses.dataclass(frozen=True)
class PerClip:
  """A metric as reduce(mean over rows of terms), with the clip of every row."""
  terms: np.ndarray    # float [N, d]
  clips: np.ndarray    # int [N], indices into the split's clips
  reduce: Callable[[np.ndarray], np.ndarray] = _first

  @classmethod
  def mean(cls, values, clips) -> PerClip:
    """The mean of per-row values (rows whose value is NaN are not scored)."""
    values, clips = np.asarray(values, np.float64).reshape(-1), np.asarray(clips).reshape(-1)
    keep = ~np.isnan(values)
    return cls(values[keep, None], clips[keep])

  def value(self) -> float:
    if not len(self.terms):
      return float("nan")
    return float(self.reduce(np.asarray(self.terms, np.float64).mean(axis=0)))


@dataclasses.dataclass(frozen=True)
class ByRowWeights:
  """A metric that is not a function of means (average precision, max-F1): statistic(weights)
  with weights float [N] the multiplicity of each row (None: every row once), equal to the
  statistic of the rows repeated that many times; clips [N] the clip of every row."""
  statistic: Callable[[Optional[np.ndarray]], float]
  clips: np.ndarray

  def value(self) -> float:
    return float(self.statistic(None))


Resampleable = Union[PerClip, ByRowWeights]
RESAMPLEABLE = (PerClip, ByRowWeights)  # for isinstance


def clip_draws(n_clips: int, samples: int, seed: int) -> Iterator[np.ndarray]:
  """Bootstrap draws in chunks: how many times each clip is drawn, float [<=100, n_clips]."""
  rng = np.random.default_rng([seed, 0x5EED])
  for start in range(0, samples, 100):
    yield rng.multinomial(n_clips, np.full(n_clips, 1.0 / n_clips),
                          size=min(100, samples - start)).astype(np.float64)


def resample(metrics: Mapping[str, Resampleable], n_clips: int, samples: int = 1000,
             seed: int = 0, draws: Optional[Iterable[np.ndarray]] = None
             ) -> dict[str, np.ndarray]:
  """Each metric's value under `samples` bootstrap draws of the n_clips clips: float [samples].

  draws: the counts per clip of each draw, in chunks [b, n_clips] (default `clip_draws`).
  A draw where a metric has no scored row gives NaN for it.
  """
  sums, counts = {}, {}
  for name, m in metrics.items():
    if isinstance(m, ByRowWeights):
      continue
    terms = np.asarray(m.terms, np.float64)
    sums[name] = np.zeros((n_clips, terms.shape[1]))
    np.add.at(sums[name], m.clips, terms)
    counts[name] = np.bincount(m.clips, minlength=n_clips).astype(np.float64)
  out = {name: [] for name in metrics}
  for weights in (clip_draws(n_clips, samples, seed) if draws is None else draws):
    for name, m in metrics.items():
      if isinstance(m, ByRowWeights):
        out[name].append(np.array([m.statistic(w[m.clips]) for w in weights]))
        continue
      rows = weights @ counts[name]
      with np.errstate(invalid="ignore", divide="ignore"):
        means = (weights @ sums[name]) / rows[:, None]
        out[name].append(np.where(rows > 0, m.reduce(means), np.nan))
  return {name: np.concatenate(v) if v else np.zeros(0) for name, v in out.items()}


def interval(draws: np.ndarray) -> Optional[list[float]]:
  """[2.5th, 97.5th] percentile of the finite draws; None without any."""
  draws = draws[np.isfinite(draws)]
  if not len(draws):
    return None
  return [float(v) for v in np.percentile(draws, [2.5, 97.5])]


def scoring(metrics: Mapping[str, Resampleable], values: Mapping[str, object],
            baselines: Callable[[str], Sequence[object]], clip_ids: Sequence[str],
            samples: int = 1000, seed: int = 0,
            lower_is_better: Callable[[str], bool] = lambda key: False) -> dict[str, dict]:
  """What metrics.json says of each resampled metric, by name:

    ci95: [low, high] bootstrap interval (absent with samples = 0);
    n_scored / n_expected: clips with a scored row / clips in the split;
    unscored_clips: ids of the split's clips with no scored row (when there are any);
    gain, gain_over, gain_ci95: how much better the metric is than its best trivial baseline
      (of baselines(name): result names, or objects with a `value`, such as a Chance line):
      metric - baseline, or baseline - metric where lower_is_better(name); positive = better;
      and the paired interval of that difference.
  """
  n = len(clip_ids)
  draws = resample(metrics, n, samples, seed) if samples > 0 and n else {}
  out = {}
  for name, m in metrics.items():
    scored = np.unique(m.clips)
    entry: dict = {"n_scored": int(len(scored)), "n_expected": int(n)}
    if len(scored) < n:
      missing = np.setdiff1d(np.arange(n), scored)
      entry["unscored_clips"] = [str(clip_ids[i]) for i in missing]
    if name in draws and interval(draws[name]) is not None:
      entry["ci95"] = interval(draws[name])
    sign = -1.0 if lower_is_better(name) else 1.0
    best = _best_baseline(name, baselines(name), values, sign)
    if best is not None:
      label, base_value, base_draws = best
      entry["gain"] = sign * (float(values[name]) - base_value)
      entry["gain_over"] = label
      # Paired: the same draws for metric and baseline (a fixed Chance line does not move).
      if name in draws and (not base_draws or label in draws):
        paired = sign * (draws[name] - (draws[label] if base_draws else base_value))
        if interval(paired) is not None:
          entry["gain_ci95"] = interval(paired)
    out[name] = entry
  return out


def _best_baseline(name: str, candidates, values, sign: float = 1.0):
  """(label, value, resampled?) of the best baseline of a metric (the highest; the lowest for
  sign -1), or None."""
  best = None
  for base in candidates:
    if isinstance(base, str):
      value = values.get(base)
      if not isinstance(value, float) or base == name or np.isnan(value):
        continue
      label, resampled = base, True
    else:
      value, label, resampled = float(base.value), str(base.label), False
    if best is None or sign * value > sign * best[1]:
      best = (label, float(value), resampled)
  return best

