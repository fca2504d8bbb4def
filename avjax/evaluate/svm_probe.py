"""L3's linear probe ("Look, Listen and Learn", Sec. 4.2), as arrays in and accuracies out.

The protocol the paper reports on ESC-50 (79.3%) and DCASE 2013 (93%):
  1. every clip is cut into 1 s windows; each window's feature is the audio tower's conv4_2
     before its ReLU, max-pooled to a 4 x 3 grid (frequency x time): 4 * 3 * 512 = 6144-d
     (`grid_max_pool`);
  2. for each official fold, linear SVMs (one per class against the rest) are fitted on the
     windows of the other folds, after z-normalising every dimension with those training
     windows' mean and deviation; their C is the one of `C_GRID` with the best clip accuracy
     in a leave-one-fold-out cross-validation inside the training folds;
  3. a clip's class is the arg-max of its windows' SVM scores averaged;
  4. the figure is the mean over folds of the clip accuracy.

`svm_probe` runs steps 2-4 on any window features; `majority_probe` is its trivial baseline
(each fold's most frequent training class), and `spectrogram_features` the raw-input baseline
(`pixel_features` for the same protocol on the vision tower: one window, the clip's middle
frame, per clip).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import numpy as np
import joblib
from sklearn import model_selection, svm

GRID = (4, 3)  # L3: conv4_2's 32 x 24 (frequency x time) map pooled to 4 x 3
C_GRID = (0.001, 0.01, 0.1, 1.0)  # z-normalised features of thousands of dims want a small C
_STD_FLOOR = 1e-6  # a dimension constant over the training windows is scaled as if by 1


def grid_max_pool(maps: np.ndarray, grid: Sequence[int] = GRID) -> np.ndarray:
  """Max over a grid of cells of each map: [B, H, W, C] -> [B, gh * gw * C].

  Cell i of an axis of length H covers rows floor(i H / g) .. ceil((i + 1) H / g) - 1, so for
  any map size the cells tile the axis (they overlap by a row where g does not divide H, and
  repeat a row where H < g): L3's 32 x 24 map gives 8 x 8 cells, as the paper's 4 x 3 pooling.
  """
  return _grid_pool(maps, grid, np.max)


def _grid_pool(maps: np.ndarray, grid: Sequence[int], reduce) -> np.ndarray:
  maps = np.asarray(maps, np.float32)
  b, h, w, c = maps.shape
  gh, gw = grid
  cells = []
  for i in range(gh):
    r0, r1 = (i * h) // gh, -((-(i + 1) * h) // gh)
    for j in range(gw):
      c0, c1 = (j * w) // gw, -((-(j + 1) * w) // gw)
      cells.append(reduce(maps[:, r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)], axis=(1, 2)))
  return np.stack(cells, axis=1).reshape(b, gh * gw * c)


def pixel_features(images: np.ndarray, size: int = 8) -> np.ndarray:
  """The raw-input baseline of an image probe: each image's mean colour in a size x size
  grid of cells, [B, S, S, 3] uint8 -> [B, size * size * 3] (a thumbnail)."""
  return _grid_pool(np.asarray(images, np.float32) / 255.0, (size, size), np.mean)


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
                 n_classes: int) -> np.ndarray:
  """Predicted class of each test clip by one-vs-rest linear SVMs fitted on the training
  clips' windows.

  Each class's SVM (hinge loss) is solved in its dual on the linear kernel of the z-normalised
  windows (libsvm, scikit-learn's SVC with a precomputed kernel): the same linear SVM as a
  primal solver's, hundreds of times faster when windows are fewer than dimensions (conv4_2
  features) and no slower otherwise.
  """
  train_rows = np.isin(window_clip, train_clips)
  test_rows = np.isin(window_clip, test_clips)
  x_train = features[train_rows]
  mean = x_train.mean(axis=0)
  std = np.maximum(x_train.std(axis=0), _STD_FLOOR)
  x_train = (x_train - mean) / std
  x_test = (features[test_rows] - mean) / std
  y_train = labels[window_clip[train_rows]]
  seen = np.unique(y_train)
  if len(seen) < 2:  # one class to learn from: it is the only answer
    return np.full(len(test_clips), seen[0])
  gram, cross = x_train @ x_train.T, x_test @ x_train.T
  scores = np.full((len(x_test), n_classes), -np.inf)
  for cls in seen:
    clf = svm.SVC(C=c, kernel="precomputed").fit(gram, (y_train == cls).astype(np.int32))
    scores[:, cls] = clf.decision_function(cross)
  return np.argmax(_clip_scores(scores, window_clip[test_rows], test_clips), axis=1)


def _inner_tasks(folds, train_clips, c_grid):
  """(C, held-out clips, training clips) of the leave-one-fold-out inside train_clips."""
  inner = np.unique(folds[train_clips])
  if len(inner) < 2:  # nothing to hold out inside a single training fold
    return []
  return [(float(c), train_clips[folds[train_clips] == f], train_clips[folds[train_clips] != f])
          for c in sorted(c_grid) for f in inner]


def svm_probe(features: np.ndarray, window_clip: np.ndarray, labels: np.ndarray,
              folds: np.ndarray, c_grid: Sequence[float] = C_GRID, n_jobs: int = -1
              ) -> ProbeResult:
  """The protocol on window features (see the module docstring).

  C is the one with the most clips right over the leave-one-fold-out inside the training
  folds (ties: the smaller C); with one C, or one training fold, the grid's middle value.

  Args:
    features: float [W, D], one row per window.
    window_clip: int [W], the clip of each window (index into labels and folds).
    labels: int [N], the class of each clip.
    folds: int [N], the fold of each clip; each fold is held out once.
    c_grid: the SVM's C candidates.
    n_jobs: SVM problems solved at once (threads); -1: one per core.
  """
  features = np.asarray(features, np.float64)
  window_clip, labels, folds = (np.asarray(a) for a in (window_clip, labels, folds))
  n_classes = int(labels.max()) + 1
  all_clips = np.unique(window_clip)
  outer = np.unique(folds[all_clips])
  if len(outer) < 2:
    raise ValueError("a probe needs at least 2 folds: each is held out once")
  run = joblib.Parallel(n_jobs=n_jobs, prefer="threads")

  def hits_of(c, test, train):
    pred = _fit_predict(features, window_clip, labels, train, test, c, n_classes)
    return pred == labels[test]

  splits = [(all_clips[folds[all_clips] == f], all_clips[folds[all_clips] != f]) for f in outer]
  # Every inner fit of every outer fold at once, then each outer fold's C.
  inner = [_inner_tasks(folds, train, c_grid) if len(c_grid) > 1 else [] for _, train in splits]
  flat = run(joblib.delayed(hits_of)(c, held, rest) for tasks in inner
             for c, held, rest in tasks)
  chosen, start = [], 0
  for tasks in inner:
    score = {}
    for (c, _, _), hit in zip(tasks, flat[start:start + len(tasks)]):
      score[c] = score.get(c, 0) + int(hit.sum())
    start += len(tasks)
    middle = float(sorted(c_grid)[(len(c_grid) - 1) // 2])
    # max() keeps the first (smallest) C among equals.
    chosen.append(max(sorted(score), key=lambda c: score[c]) if len(score) > 1 else middle)
  outer_hits = run(joblib.delayed(hits_of)(c, test, train)
                   for c, (test, train) in zip(chosen, splits))
  hits = np.zeros(len(labels), bool)
  result = ProbeResult([], [], hits, [])
  for fold, c, (test, _), hit in zip(outer, chosen, splits, outer_hits):
    hits[test] = hit
    result.folds.append(int(fold))
    result.fold_accuracy.append(float(np.mean(hit)))
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
