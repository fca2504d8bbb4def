"""L3's linear probe ("Look, Listen and Learn", Sec. 4.2), as arrays in and accuracies out.

The protocol the paper reports on ESC-50 (79.3%) and DCASE 2013 (93%):
  1. every clip is cut into 1 s windows; each window's feature is the audio tower's conv4_2
     before its ReLU, max-pooled to a 4 x 3 grid (frequency x time): 4 * 3 * 512 = 6144-d
     (`grid_max_pool`);
  2. for each official fold, a linear SVM is fitted on the windows of the other folds, after
     z-normalising every dimension with those training windows' mean and deviation; its C is
     the one of `C_GRID` with the best clip accuracy in a leave-one-fold-out cross-validation
     inside the training folds;
  3. a clip's class is the arg-max of its windows' SVM scores averaged;
  4. the figure is the mean over folds of the clip accuracy.

`svm_probe` runs steps 2-4 on any window features; `majority_probe` is its trivial baseline
(each fold's most frequent training class), and `spectrogram_features` the raw-input baseline.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import numpy as np
from sklearn import exceptions, model_selection, svm

GRID = (4, 3)  # L3: conv4_2's 32 x 24 (frequency x time) map pooled to 4 x 3
C_GRID = (0.001, 0.01, 0.1, 1.0)  # z-normalised features of thousands of dims want a small C
_STD_FLOOR = 1e-6  # a dimension constant over the training windows is scaled as if by 1


def grid_max_pool(maps: np.ndarray, grid: Sequence[int] = GRID) -> np.ndarray:
  """Max over a grid of cells of each map: [B, H, W, C] -> [B, gh * gw * C].

  Cell i of an axis of length H covers rows floor(i H / g) .. ceil((i + 1) H / g) - 1, so for
  any map size the cells tile the axis (they overlap by a row where g does not divide H, and
  repeat a row where H < g): L3's 32 x 24 map gives 8 x 8 cells, as the paper's 4 x 3 pooling.
  """
  maps = np.asarray(maps, np.float32)
  b, h, w, c = maps.shape
  gh, gw = grid
  cells = []
  for i in range(gh):
    r0, r1 = (i * h) // gh, -((-(i + 1) * h) // gh)
    for j in range(gw):
      c0, c1 = (j * w) // gw, -((-(j + 1) * w) // gw)
      cells.append(maps[:, r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)].max(axis=(1, 2)))
  return np.stack(cells, axis=1).reshape(b, gh * gw * c)


def spectrogram_features(spectrograms: np.ndarray) -> np.ndarray:
  """The raw-input baseline: each frequency bin's mean and deviation over the window's time
  frames, [B, F, T, 1] -> [B, 2F] (the log spectrogram's average spectrum and its spread)."""
  x = np.asarray(spectrograms, np.float32)[..., 0]
  return np.concatenate([x.mean(axis=2), x.std(axis=2)], axis=1)


@dataclasses.dataclass
class ProbeResult:
  """Per fold and per clip results of one feature set under the protocol.

  Attributes:
    folds: the fold ids, in order.
    fold_accuracy: clip accuracy on each fold.
    hits: per clip, whether the fold that held it out predicted it right.
    chosen_c: the C picked for each fold (NaN for the majority baseline).
  """
  folds: list[int]
  fold_accuracy: list[float]
  hits: np.ndarray
  chosen_c: list[float]

  @property
  def mean_accuracy(self) -> float:
    """The protocol's figure: the mean over folds of the clip accuracy."""
    return float(np.mean(self.fold_accuracy)) if self.fold_accuracy else float("nan")


def stratified_folds(labels: np.ndarray, n_folds: int = 5, seed: int = 0) -> np.ndarray:
  """Fold ids 1..k for clips without official folds: stratified by class, shuffled with seed
  (k = n_folds, or fewer when no class has that many clips)."""
  labels = np.asarray(labels)
  k = min(n_folds, int(np.bincount(labels).max()) if len(labels) else 0)
  if k < 2:
    raise ValueError(f"a probe needs 2 clips of some class to make 2 folds; the largest class "
                     f"has {k}")
  folds = np.zeros(len(labels), np.int64)
  splitter = model_selection.StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # classes rarer than k
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
      folds[test] = fold + 1
  return folds


def _clip_scores(scores: np.ndarray, window_clip: np.ndarray, clips: np.ndarray) -> np.ndarray:
  """Mean window score of each of `clips` ([len(clips), classes])."""
  out = np.zeros((len(clips), scores.shape[1]))
  for row, clip in enumerate(clips):
    out[row] = scores[window_clip == clip].mean(axis=0)
  return out


def _fit_predict(features, window_clip, labels, train_clips, test_clips, c: float,
                 n_classes: int, seed: int) -> np.ndarray:
  """Predicted class of each test clip by an SVM fitted on the training clips' windows."""
  train_rows = np.isin(window_clip, train_clips)
  test_rows = np.isin(window_clip, test_clips)
  x_train = features[train_rows]
  mean = x_train.mean(axis=0)
  std = np.maximum(x_train.std(axis=0), _STD_FLOOR)
  y_train = labels[window_clip[train_rows]]
  seen = np.unique(y_train)
  if len(seen) < 2:  # one class to learn from: it is the only answer
    return np.full(len(test_clips), seen[0])
  # The dual solver: far faster than the primal one at the larger Cs on these sizes.
  clf = svm.LinearSVC(C=c, dual=True, max_iter=2000, random_state=seed)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
    clf.fit((x_train - mean) / std, y_train)
  raw = clf.decision_function((features[test_rows] - mean) / std)
  raw = raw[:, None] if raw.ndim == 1 else raw
  if len(seen) == 2:  # one score: positive means the second class
    raw = np.concatenate([-raw, raw], axis=1)
  scores = np.full((len(raw), n_classes), -np.inf)
  scores[:, clf.classes_] = raw
  return np.argmax(_clip_scores(scores, window_clip[test_rows], test_clips), axis=1)


def _choose_c(features, window_clip, labels, folds, train_clips, c_grid, n_classes,
              seed) -> float:
  """The C with the best clip accuracy over leave-one-fold-out inside the training clips
  (ties: the smaller C); c_grid[0] alone when there is one training fold or one C."""
  inner = np.unique(folds[train_clips])
  if len(inner) < 2 or len(c_grid) < 2:
    return float(c_grid[0]) if len(c_grid) == 1 else 1.0
  best, best_hits = float(c_grid[0]), -1
  for c in sorted(c_grid):
    hits = 0
    for fold in inner:
      held = train_clips[folds[train_clips] == fold]
      rest = train_clips[folds[train_clips] != fold]
      pred = _fit_predict(features, window_clip, labels, rest, held, c, n_classes, seed)
      hits += int(np.sum(pred == labels[held]))
    if hits > best_hits:
      best, best_hits = float(c), hits
  return best


def svm_probe(features: np.ndarray, window_clip: np.ndarray, labels: np.ndarray,
              folds: np.ndarray, c_grid: Sequence[float] = C_GRID, seed: int = 0
              ) -> ProbeResult:
  """The protocol on window features (see the module docstring).

  Args:
    features: float [W, D], one row per window.
    window_clip: int [W], the clip of each window (index into labels and folds).
    labels: int [N], the class of each clip.
    folds: int [N], the fold of each clip; each fold is held out once.
    c_grid: the SVM's C candidates.
    seed: the SVM's seed (LinearSVC's coordinate order).
  """
  features = np.asarray(features, np.float64)
  window_clip, labels, folds = (np.asarray(a) for a in (window_clip, labels, folds))
  n_classes = int(labels.max()) + 1
  all_clips = np.unique(window_clip)
  if len(np.unique(folds[all_clips])) < 2:
    raise ValueError("a probe needs at least 2 folds: each is held out once")
  hits = np.zeros(len(labels), bool)
  result = ProbeResult([], [], hits, [])
  for fold in np.unique(folds[all_clips]):
    test = all_clips[folds[all_clips] == fold]
    train = all_clips[folds[all_clips] != fold]
    c = _choose_c(features, window_clip, labels, folds, train, c_grid, n_classes, seed)
    pred = _fit_predict(features, window_clip, labels, train, test, c, n_classes, seed)
    hits[test] = pred == labels[test]
    result.folds.append(int(fold))
    result.fold_accuracy.append(float(np.mean(hits[test])))
    result.chosen_c.append(c)
  return result


def majority_probe(labels: np.ndarray, folds: np.ndarray) -> ProbeResult:
  """The trivial baseline under the same folds: each fold answers its training clips' most
  frequent class."""
  labels, folds = np.asarray(labels), np.asarray(folds)
  hits = np.zeros(len(labels), bool)
  result = ProbeResult([], [], hits, [])
  for fold in np.unique(folds):
    test, train = folds == fold, folds != fold
    guess = np.argmax(np.bincount(labels[train], minlength=labels.max() + 1))
    hits[test] = labels[test] == guess
    result.folds.append(int(fold))
    result.fold_accuracy.append(float(np.mean(hits[test])))
    result.chosen_c.append(float("nan"))
  return result


def bootstrap_fold_means(hits: dict[str, np.ndarray], folds: np.ndarray, samples: int = 1000,
                         seed: int = 0) -> dict[str, np.ndarray]:
  """Each result's mean-over-folds accuracy under `samples` bootstrap draws: float [samples].

  A draw resamples the clips of every fold with replacement (a fold keeps its size, as the
  figure weighs folds equally); every result gets the same draws, so differences are paired.
  hits: name -> bool [N] per clip; folds: int [N].
  """
  folds = np.asarray(folds)
  rng = np.random.default_rng([seed, 0xF01D])
  members = [np.flatnonzero(folds == f) for f in np.unique(folds)]
  draws = [[rng.choice(m, size=len(m)) for m in members] for _ in range(samples)]
  return {name: np.array([np.mean([h[idx].mean() for idx in draw]) for draw in draws])
          for name, h in hits.items()}
