"""--mode=probe: L3's linear probe of a checkpoint's audio (or vision) tower on a dataset.

    python -m avjax.main --experiment=l3:demo --workdir=W --mode=probe \\
        --config.probe.root=/data/ESC-50

Restores the checkpoint (the latest, or --checkpoint), indexes probe.root (ESC-50,
UrbanSound8K, DCASE 2013, a folder of sounds, or any video dataset: its soundtracks), decodes
each clip once into its 1 s windows, and scores under `avjax.evaluate.svm_probe`'s protocol
(probe.modality=image: the vision tower on each clip's middle frame, the raw baseline a
colour thumbnail, "pixels"):
  trained      the checkpoint's conv4_2 before ReLU, max-pooled to probe.grid;
  untrained    the same features of the initialisation training starts from (config.seed),
               L3's "Ours random" row (62.5% on ESC-50);
  spectrogram  the raw input: each frequency bin's mean and deviation over the window;
  majority     each fold's most frequent training class.
Prints the table (mean over folds with its 95% interval, each fold, the gain over the
untrained net) and writes WORKDIR/probe/<dataset>.json.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
from typing import Optional, Sequence

import jax
import ml_collections
import numpy as np
import tqdm

from avjax.errors import ConfigError
from avjax.evaluate import intervals, svm_probe
from avjax.models import build_model, nets
from avjax.train import checkpoint as checkpoint_lib
from avjax.train import state as state_lib
from avjax.train.setup import check_workdir
from avjax import runtime
from data_pipeline import decode, features, index, pairs, pipeline
from data_pipeline.clips import Clip, DataError, class_names



@dataclasses.dataclass
class Windows:
  """Every clip's windows as network inputs, and which clip each came from."""
  inputs: np.ndarray  # spectrograms float32 [W, F, T, 1] or images uint8 [W, S, S, 3]
  clip: np.ndarray    # int [W]
  failed: list = dataclasses.field(default_factory=list)  # (path, reason): no windows


def window_count(clip: Clip, seconds: float, max_windows: int = 0) -> int:
  """Whole windows of `seconds` in the clip (at least one: a short sound is zero-padded)."""
  n = max(1, int(math.floor(clip.duration / seconds + 1e-6)))
  return min(n, max_windows) if max_windows > 0 else n


def clip_windows(clips: Sequence[Clip], data_cfg: ml_collections.ConfigDict,
                 max_windows: int = 0, progress: bool = True) -> Windows:
  """Decodes each clip's sound once (at data.sample_rate) and cuts it into consecutive windows
  of data.audio_seconds from the clip's start; a clip with room for one window gives its
  middle one (zero-padded round a sound shorter than the window). A clip whose sound does not
  decode gives no window and is listed in `failed`."""
  seconds, rate = data_cfg.audio_seconds, data_cfg.sample_rate
  step = int(round(seconds * rate))
  specs, owner, failed = [], [], []
  for i, clip in enumerate(tqdm.tqdm(clips, desc="probe windows", unit="clip",
                                     disable=not progress)):
    n = window_count(clip, seconds, max_windows)
    centre = clip.start + (n * seconds if n > 1 else clip.duration) / 2
    try:
      wave = pipeline.clip_audio(clip, centre, n * seconds, data_cfg)
    except decode.DecodeError as err:
      failed.append((clip.audio_path, str(err)))
      continue
    for k in range(n):
      specs.append(features.spectrogram_from_config(wave[k * step:(k + 1) * step], data_cfg))
      owner.append(i)
  if not specs:
    raise DataError(f"no clip's sound could be decoded ({len(failed)} failed; first: "
                    f"{failed[0][0]}: {failed[0][1]})")
  return Windows(np.stack(specs), np.asarray(owner), failed)


def _drop_failed(clips: Sequence[Clip], windows: Windows) -> tuple[list[Clip], Windows]:
  """The clips that gave windows, and the windows' clip indices into that list."""
  kept = np.unique(windows.clip)
  if len(kept) == len(clips):
    return list(clips), windows
  print(f"skipped {len(windows.failed)} clip(s) whose sound did not decode, e.g. "
        f"{windows.failed[0][0]}: {windows.failed[0][1]}", file=sys.stderr)
  return ([clips[i] for i in kept],
          Windows(windows.inputs, np.searchsorted(kept, windows.clip), windows.failed))


def clip_frames(clips: Sequence[Clip], data_cfg: ml_collections.ConfigDict,
                progress: bool = True) -> Windows:
  """Each clip's middle frame (its evaluation frame) as the network sees it in evaluation:
  one window per clip, the whole frame resized to data.image_size."""
  images, owner, failed = [], [], []
  for i, clip in enumerate(tqdm.tqdm(clips, desc="probe frames", unit="clip",
                                     disable=not progress)):
    if clip.audio_only:
      raise DataError(f"an image probe needs pictures; {clip.path} is a sound (use "
                      "probe.modality=audio)")
    try:
      frame = pipeline.decode_frame(clip, pairs.middle_grid_time(clip, data_cfg.audio_seconds),
                                    data_cfg)
    except decode.DecodeError as err:
      failed.append((clip.path, str(err)))
      continue
    images.append(features.image_input(frame, data_cfg, None)[0])
    owner.append(i)
  if not images:
    raise DataError(f"no clip's frame could be decoded ({len(failed)} failed; first: "
                    f"{failed[0][0]}: {failed[0][1]})")
  return Windows(np.stack(images), np.asarray(owner), failed)


# Per modality: the inputs, the tower's probe map, the raw-input baseline and its name.
MODALITIES = {
    "audio": (lambda clips, cfg, pc, progress: clip_windows(clips, cfg, pc.max_windows,
                                                            progress),
              nets.AVNet.audio_probe_map, svm_probe.spectrogram_features, "spectrogram"),
    "image": (lambda clips, cfg, pc, progress: clip_frames(clips, cfg, progress),
              nets.AVNet.image_probe_map, svm_probe.pixel_features, "pixels"),
}


@functools.lru_cache(maxsize=4)
def _probe_map_fn(model: nets.AVNet, method):
  """The jitted probe map, one per net and tower: the trained and the untrained variables
  share its compilation."""
  return jax.jit(lambda v, x: model.apply(v, x, method=method))


def tower_features(model: nets.AVNet, variables: dict, inputs: np.ndarray,
                   grid: Sequence[int], batch_size: int,
                   method=nets.AVNet.audio_probe_map) -> np.ndarray:
  """conv4_2 before ReLU of every window (method: the tower's probe map), max-pooled to the
  grid: float32 [W, gh * gw * C]."""
  run = _probe_map_fn(model, method)
  out = []
  for start in range(0, len(inputs), batch_size):
    batch = inputs[start:start + batch_size]
    rows = len(batch)
    if rows < batch_size:  # one compiled shape for every batch
      batch = np.concatenate([batch, np.zeros((batch_size - rows, *batch.shape[1:]),
                                              batch.dtype)])
    out.append(svm_probe.grid_max_pool(np.asarray(run(variables, batch))[:rows], grid))
  return np.concatenate(out)


def _labels_and_folds(clips: Sequence[Clip], n_folds: int, seed: int):
  """Class names, each clip's class and fold, and whether the folds are the dataset's own."""
  classes = class_names(clips)
  labels = np.array([classes.index(c.label) for c in clips])
  if all(c.fold > 0 for c in clips):
    folds, kind = np.array([c.fold for c in clips]), "official"
  else:
    try:
      folds, kind = svm_probe.stratified_folds(labels, n_folds, seed), "stratified"
    except ValueError as err:
      raise DataError(str(err)) from None
  if len(np.unique(folds)) < 2:
    raise DataError(f"the probe holds each fold out once and needs 2 or more; the clips are "
                    f"all in fold {folds[0]}")
  return classes, labels, folds, kind


def _probe_clips(probe_cfg, data_cfg) -> tuple[index.Dataset, list[Clip]]:
  cfg = ml_collections.ConfigDict(data_cfg.to_dict())
  cfg.root, cfg.format, cfg.max_clips = probe_cfg.root, probe_cfg.format, probe_cfg.max_clips
  dataset = index.load_dataset(cfg)
  clips = [c for c in dataset.clips if c.label is not None]
  if len(class_names(clips)) < 2:
    raise DataError(f"the probe needs labelled clips of 2 or more classes; {dataset.root} has "
                    f"{len(class_names(clips))} class(es) over {len(clips)} labelled clip(s)")
  return dataset, clips


def _variables(train_state) -> dict:
  return {"params": train_state.params, "batch_stats": train_state.batch_stats}


def probe_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                     checkpoint_step: Optional[int] = None, progress: bool = True) -> dict:
  """Runs the probe (see the module docstring); returns what it writes to the JSON file."""
  check_workdir(workdir)
  pc = config.probe
  try:
    grid = tuple(int(g) for g in pc.grid)
    c_grid = tuple(float(c) for c in pc.c_grid)
  except ValueError as err:
    raise ConfigError(f"probe.grid takes integers and probe.c_grid numbers: {err}") from None
  if len(grid) != 2 or min(grid) < 1 or not c_grid or min(c_grid) <= 0:
    raise ConfigError(f"probe.grid needs two sizes >= 1 and probe.c_grid positive values; got "
                      f"{grid} and {c_grid}")
  if pc.modality not in MODALITIES:
    raise ConfigError(f"probe.modality must be one of {', '.join(MODALITIES)}, got "
                      f"{pc.modality!r}")
  if not pc.root:
    raise ConfigError("--mode=probe needs the dataset to probe: --config.probe.root=DIR "
                      "(ESC-50, UrbanSound8K, DCASE 2013 or a folder of sounds by class)")
  dataset, clips = _probe_clips(pc, config.data)  # a data mistake is said before any compile
  model = build_model(config.model)
  initial = state_lib.create_train_state(model, state_lib.make_optimizer(config.train), config,
                                         runtime.data_mesh())
  ckpt = checkpoint_lib.Checkpointer(workdir)
  try:
    step, trained = ckpt.restore_good(initial, requested=checkpoint_step)
    if step is None:
      ckpt.step_to_restore(checkpoint_step)  # raises: no checkpoint, train first
  finally:
    ckpt.close()
  make_inputs, method, raw_features, raw_name = MODALITIES[pc.modality]
  clips, windows = _drop_failed(clips, make_inputs(clips, config.data, pc, progress))
  classes, labels, folds, fold_kind = _labels_and_folds(clips, pc.folds, pc.seed)
  feats = {
      "trained": tower_features(model, _variables(trained), windows.inputs, grid,
                                pc.batch_size, method),
      "untrained": tower_features(model, _variables(initial), windows.inputs, grid,
                                  pc.batch_size, method),
      raw_name: raw_features(windows.inputs),
  }
  results = {}
  for name in tqdm.tqdm(feats, desc="probe SVMs", disable=not progress):
    results[name] = svm_probe.svm_probe(feats[name], windows.clip, labels, folds, c_grid)
  results["majority"] = svm_probe.majority_probe(labels, folds)
  report = _report(results, feats, folds, pc, dict(
      step=int(step), dataset=dataset.root, format=dataset.format, clips=len(clips),
      undecodable=len(windows.failed),
      classes=len(classes), windows=len(windows.clip), folds=int(len(np.unique(folds))),
      fold_kind=fold_kind, grid=list(grid), c_grid=list(c_grid),
      modality=pc.modality, window_seconds=float(config.data.audio_seconds),
      input_shape=list(windows.inputs.shape[1:3])))
  if jax.process_index() == 0:
    out_dir = os.path.join(workdir, "probe")
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(os.path.normpath(dataset.root)) or "probe"
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
      json.dump(report, f, indent=2)
    print(format_probe_table(report))
    print(f"Probe results written to {path}")
  return report


def _report(results, feats, folds, pc, facts: dict) -> dict:
  draws = svm_probe.bootstrap_fold_means({k: r.hits for k, r in results.items()}, folds,
                                         int(pc.bootstrap_samples), int(pc.seed))
  rows = {}
  for name, r in results.items():
    row = dict(accuracy=r.mean_accuracy, ci95=intervals.interval(draws[name]),
               fold_accuracy=r.fold_accuracy, chosen_c=r.chosen_c,
               dims=int(feats[name].shape[1]) if name in feats else 0)
    for base in ("untrained", "majority"):
      if name in feats and (base == "majority" or name == "trained"):
        row[f"gain_over_{base}"] = r.mean_accuracy - results[base].mean_accuracy
        row[f"gain_over_{base}_ci95"] = intervals.interval(draws[name] - draws[base])
    rows[name] = row
  return dict(protocol="L3 linear probe (Arandjelovic & Zisserman 2017, Sec. 4.2)",
              **facts, folds_ids=results["majority"].folds, results=rows)


def _ci(bounds, signed: bool = False) -> str:
  f = "{:+.3f}" if signed else "{:.3f}"
  return "[" + ", ".join(f.format(b) for b in bounds) + "]" if bounds else ""


def format_probe_table(report: dict) -> str:
  """The console table of a probe report."""
  h, w = report["input_shape"]
  inputs = (f"{report['windows']} windows of {report['window_seconds']:g} s ({h}x{w} "
            "spectrograms)" if report["modality"] == "audio"
            else f"{report['windows']} middle frames ({h}x{w})")
  lines = [
      f"L3 linear probe ({report['modality']} tower), step {report['step']}: "
      f"{report['dataset']} ({report['format']}), {report['clips']} clips, "
      f"{report['classes']} classes, {report['folds']} {report['fold_kind']} folds, {inputs}",
      f"tower features: conv4_2 before ReLU, max-pooled to {report['grid'][0]}x"
      f"{report['grid'][1]}; z-normalised on the training folds; linear SVM, C from "
      f"{report['c_grid']} by leave-one-fold-out inside them; window scores averaged per clip",
      f"{'features':<12} {'dims':>5}  {'accuracy':>8}  {'95% CI':<16} {'vs untrained':<24} "
      f"{'vs majority':<24} per fold"]
  for name, row in report["results"].items():
    gains = []
    for base in ("untrained", "majority"):
      key = f"gain_over_{base}"
      gains.append(f"{row[key]:+.3f} {_ci(row[key + '_ci95'], True)}" if key in row else "")
    folds = " ".join(f"{a:.3f}" for a in row["fold_accuracy"])
    lines.append(f"{name:<12} {row['dims'] or '':>5}  {row['accuracy']:8.4f}  "
                 f"{_ci(row['ci95']):<16} {gains[0]:<24} {gains[1]:<24} {folds}")
  return "\n".join(lines)
