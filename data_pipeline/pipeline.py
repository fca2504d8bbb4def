"""Grain pipelines: endless, resumable AVC training batches and fixed evaluation batches.

Train chain: source of clip indices -> seed -> shuffle -> per-process shard -> each clip twice
(its positive and its negative side by side; once, as a positive, when the loss takes its
negatives from the batch) -> repeat ->
random_map (pair sampling, decoding, features, augmentation; all randomness from the rng Grain
derives from the seed and the element's position, so order and content are deterministic and a
restored iterator continues exactly) -> batch(drop_remainder) -> to_iter_dataset -> mp_prefetch.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import Callable, Iterator, Mapping, Optional, Sequence

import grain
import numpy as np

from data_pipeline import clip_cache, decode, features, media, packed, pairs
from data_pipeline.clips import Clip, DataError, class_names
from data_pipeline.decoding_marks import DecodingMarks

_MAX_TRIES = 8  # stand-in clips tried before deciding the data are unusable


def decode_frame(clip: Clip, t: float, data_cfg) -> np.ndarray:
  """The RGB frame of a clip shown at time t: from its packed record, from the clip cache when
  it holds the clip, else decoded from the file."""
  record = packed.record_of(clip)
  if record is not None:
    return record.frame(t)
  cache = clip_cache.for_config(data_cfg)
  if cache and cache.covers(clip.path, clip.duration):
    return cache.frame(clip.path, t)
  return decode.read_frame(clip.path, t, timeout_s=data_cfg.per_file_timeout_s)


def clip_audio(clip: Clip, centre: float, seconds: float, data_cfg) -> np.ndarray:
  """A clip's mono sound [seconds x data.sample_rate] centred at `centre` seconds (zeros
  outside the file), from wherever its media are (as decode_frame)."""
  record = packed.record_of(clip)
  if record is not None:
    return record.wave(centre, seconds, data_cfg.sample_rate)
  cache = clip_cache.for_config(data_cfg)
  if cache and seconds == data_cfg.audio_seconds and cache.covers(clip.audio_path,
                                                                  clip.duration):
    return cache.audio(clip.audio_path, clip.duration, centre, seconds)
  return decode.read_audio(clip.audio_path, centre, seconds, data_cfg.sample_rate,
                           timeout_s=data_cfg.per_file_timeout_s)


def decode_wave(clip: Clip, centre: float, data_cfg) -> np.ndarray:
  """A clip's mono wave [audio_seconds x sample_rate] centred at `centre` seconds."""
  return clip_audio(clip, centre, data_cfg.audio_seconds, data_cfg)


def decode_pair(clips: Sequence[Clip], spec: pairs.PairSpec, data_cfg):
  """The RGB frame and the mono wave [audio_seconds x sample_rate] one pair spec names."""
  return (decode_frame(clips[spec.image_clip], spec.frame_time, data_cfg),
          decode_wave(clips[spec.audio_clip], spec.audio_center, data_cfg))


def network_inputs(frame: np.ndarray, wave: np.ndarray, data_cfg,
                   rng: np.random.Generator | None,
                   image_rng: np.random.Generator | None = None):
  """(image uint8 [S,S,3], audio [F,T,1], Geometry) of a decoded frame and wave.

  rng None means evaluation: the whole frame resized, no augmentation. image_rng, when given, draws the
  image augmentation instead of rng (so that two examples can share one augmented frame).
  """
  aug = rng is not None and data_cfg.augment
  image, geo = features.image_input(frame, data_cfg, (image_rng or rng) if aug else None)
  if aug:
    wave = features.apply_gain(wave, rng, data_cfg.gain)
  return image, features.spectrogram_from_config(wave, data_cfg), geo


def load_example(clips: Sequence[Clip], spec: pairs.PairSpec, data_cfg,
                 rng: np.random.Generator | None,
                 image_rng: np.random.Generator | None = None):
  """Decodes one pair spec into (image uint8 [S,S,3], audio [F,T,1], Geometry); see
  `network_inputs` for rng and image_rng."""
  frame, wave = decode_pair(clips, spec, data_cfg)
  return network_inputs(frame, wave, data_cfg, rng, image_rng)


class DecodeStalled(DataError):
  """A training decode ran past data.per_file_timeout_s twice in a row."""


def _load_allowing_one_timeout(clips, spec, data_cfg, rng, frame_rng, files: str):
  """`load_example`, tried once more when decoding runs past data.per_file_timeout_s; a
  second time is an error that stops training. Replacing the clip instead would make what a
  seed trains on depend on how busy the machine is. A decode that timed out drew nothing from
  rng (the augmentation comes after it), so the second try gives what the first would have."""
  try:
    return load_example(clips, spec, data_cfg, rng, image_rng=frame_rng)
  except decode.DecodeTimeout:
    pass
  try:
    return load_example(clips, spec, data_cfg, rng, image_rng=frame_rng)
  except decode.DecodeTimeout as e:
    raise DecodeStalled(
        f"decoding {files} ran past data.per_file_timeout_s "
        f"({float(data_cfg.per_file_timeout_s):g} s) twice ({e}): the machine or its storage "
        "is too slow for that limit; raise it") from None


def train_example(clips: Sequence[Clip], clip_index: int, label: int, frame_id: int,
                  rng: np.random.Generator, data_cfg,
                  frame_rng: np.random.Generator | None = None,
                  on_failure: Callable[[str, str], None] | None = None,
                  marks: DecodingMarks | None = None) -> dict:
  """One training example; a clip that fails to decode is replaced by a random other one.

  frame_id: equal for the rows of one batch that show the same frame (a positive and its
  negative), in [0, 2^30). frame_rng, when given, draws the frame time and the image
  augmentation: the positive and the negative of one clip get the same generator state, hence
  the same augmented frame. on_failure(files, reason) hears of each replaced clip; marks, when
  given, hold the files being decoded (named if the process dies meanwhile).

  Raises:
    DecodeStalled: a decode ran past data.per_file_timeout_s twice (never replaced).
    DataError: _MAX_TRIES clips in a row failed to decode.
  """
  errors = []
  for attempt in range(_MAX_TRIES):
    spec = pairs.sample_pair(clips, clip_index, label, rng, data_cfg, frame_rng=frame_rng)
    files = clips[spec.image_clip].path
    if spec.audio_clip != spec.image_clip:
      files += f" + sound of {clips[spec.audio_clip].audio_path}"
    if marks is not None:
      marks.mark(files)
    try:
      image, audio, _ = _load_allowing_one_timeout(clips, spec, data_cfg, rng, frame_rng, files)
    except DecodeStalled:
      if marks is not None:
        marks.clear()
      raise
    except Exception as e:  # pylint: disable=broad-except  # any broken file: use another clip
      errors.append(f"{files}: {e}")
      if on_failure is not None:
        on_failure(files, media.failure_reason(e))
      clip_index = int(rng.integers(0, len(clips)))
      continue
    if marks is not None:
      marks.clear()
    # A stand-in clip's frame differs from its partner's: it gets an id of its own.
    frame = frame_id if attempt == 0 else 2**30 + frame_id
    return dict(image=image, audio=audio, label=np.int32(label), frame=np.int32(frame),
                replaced=np.int32(attempt > 0))
  if marks is not None:
    marks.clear()
  raise DataError(f"{_MAX_TRIES} clips in a row failed to decode, last: {errors[-1]}")


def trim_failure_log(path: str, rows: int) -> None:
  """Keeps the lines of a failure log (see _TrainTransform._log_failure) whose stream position
  is below rows. Workers decode batches ahead of the step, so a run that ends has logged clips
  of batches it never trained on; a run that was killed, the batches it trained after its last
  save, which the resumed run trains (and logs) again."""
  if not os.path.exists(path):
    return
  with open(path, encoding="utf-8", errors="replace") as f:
    kept = [line for line in f if _position(line) < rows]
  if not kept:
    os.remove(path)
    return
  tmp = f"{path}.{os.getpid()}.tmp"  # whole or not at all: a kill midway keeps the old log
  with open(tmp, "w", encoding="utf-8") as f:
    f.writelines(kept)
  os.replace(tmp, path)


def _position(line: str) -> float:
  """The stream position a failure-log line starts with; inf for a line cut short."""
  first = line.split("\t", 1)[0]
  return int(first) if first.isdigit() else float("inf")


class _TrainTransform:
  """Picklable callable for random_map (worker processes receive a copy)."""

  def __init__(self, clips, data_cfg, seed: int, process_index: int, process_count: int,
               positives_only: bool, failure_log: str, decoding_marks: str = ""):
    self._clips = list(clips)
    self._cfg = data_cfg
    self._seed, self._process, self._processes = seed, process_index, process_count
    self._positives_only = positives_only
    self._failure_log = failure_log
    self._marks = DecodingMarks(decoding_marks) if decoding_marks else None

  def _log_failure(self, position: int, files: str, reason: str) -> None:
    """One line per replaced clip; a single short O_APPEND write, so the lines of several
    worker processes never interleave."""
    if not self._failure_log:
      return
    line = f"{position}\t{reason}\t{files}"[:3000].replace("\n", " ") + "\n"
    fd = os.open(self._failure_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
      os.write(fd, line.encode("utf-8", "replace"))
    finally:
      os.close(fd)

  def _frame_id(self, local: int) -> int:
    # Unique across processes: the rows of all hosts meet in one global batch.
    return (local * self._processes + self._process) % 2**30

  def __call__(self, element, rng: np.random.Generator) -> dict:
    position, clip_index = element
    log = functools.partial(self._log_failure, position)
    if self._positives_only:  # every row its own frame and sound
      return train_example(self._clips, clip_index, 1, self._frame_id(position), rng, self._cfg,
                           on_failure=log, marks=self._marks)
    # Positions 2k and 2k+1 show the same clip (_EachTwice): one frame generator per pair.
    frame_rng = np.random.default_rng([self._seed, self._process, position // 2])
    return train_example(self._clips, clip_index, pairs.label_for_position(position),
                         self._frame_id(position // 2), rng, self._cfg, frame_rng,
                         on_failure=log, marks=self._marks)


class _EachTwice(grain.MapDataset):
  """Each clip of the parent twice in a row. With labels alternating by position, every frame
  shown is shown once with its own sound (a positive) and once with another video's sound (a
  negative) in the same batch, so each image contributes the contrast between the two."""

  def __init__(self, parent: grain.MapDataset):
    super().__init__(parent)
    self._length = 2 * len(parent)

  def __len__(self) -> int:
    return self._length

  def __str__(self) -> str:
    return "EachTwice"

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return self._parent[index // 2]


def train_dataset(data_cfg, clips: Sequence[Clip], *, global_batch_size: int, seed: int,
                  process_index: int = 0, process_count: int = 1,
                  positives_only: bool = False, failure_log: str = "",
                  decoding_marks: str = "") -> grain.IterDataset:
  """Endless, deterministic per-process training batches (see the module docstring).

  positives_only: every row a frame with its own sound (label 1), for losses that take their
  negatives from the other rows of the batch (train.negatives="batch").
  failure_log: a file that gets one line per replaced clip: stream position, reason, files.
  decoding_marks: a folder where each decoding process marks the files it is decoding
  (data_pipeline.decoding_marks), so that a worker that dies can be named with them.
  """
  if len(clips) < 2:
    raise DataError(f"training needs at least 2 clips, got {len(clips)}")
  if global_batch_size % process_count:
    raise DataError(f"global batch {global_batch_size} does not split over {process_count} "
                    "processes")
  batch_size = global_batch_size // process_count
  ds = grain.MapDataset.source(list(range(len(clips)))).seed(seed).shuffle()
  ds = ds[process_index::process_count]
  if len(ds) < batch_size:
    raise DataError(f"{len(ds)} clips per process is fewer than the batch size {batch_size}")
  ds = (ds if positives_only else _EachTwice(ds)).repeat(None)
  ds = ds.map_with_index(lambda i, clip_index: (i, clip_index))
  ds = ds.random_map(_TrainTransform(clips, data_cfg, seed, process_index, process_count,
                                     positives_only, failure_log, decoding_marks))
  ds = ds.batch(batch_size, drop_remainder=True)
  # Grain's default of 16 threads (and 500 batches read ahead) per process makes the threads
  # fight over the GIL: on 2 cores two threads decode packed clips about twice as fast.
  it = ds.to_iter_dataset(grain.ReadOptions(
      num_threads=int(data_cfg.get("threads_per_worker", 2)),
      prefetch_buffer_size=max(1, int(data_cfg.worker_buffer_batches))))
  if data_cfg.num_workers > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=data_cfg.num_workers, per_worker_buffer_size=data_cfg.worker_buffer_batches),
        worker_init_fn=exit_with_parent)
  return it


def exit_with_parent(worker_index: int, worker_count: int) -> None:  # pylint: disable=unused-argument
  """Runs in each Grain worker: the worker ends itself within a second of its parent's death
  (kill -9, the OOM killer), instead of living on with its memory and shared segments."""
  parent = os.getppid()

  def watch():
    while True:
      time.sleep(1.0)
      if os.getppid() != parent:  # re-parented: the trainer is gone
        os._exit(1)  # pylint: disable=protected-access

  threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def box_rows(clip: Clip, frame_index: int, geo: features.Geometry, k: int):
  """Target box [4] and distractor boxes [k, 4] at a frame, in network-image coordinates."""
  def at(track):
    if not track:
      return np.full(4, -1.0, np.float32)
    return features.transform_box(track[min(frame_index, len(track) - 1)], geo)
  target = at(clip.target_boxes)
  distract = np.full((k, 4), -1.0, np.float32)
  for d, track in enumerate(clip.distractor_boxes[:k]):
    distract[d] = at(track)
  return target, distract


def _ground_truth_rows(clip: Clip, target: np.ndarray, geo: features.Geometry, k: int):
  """Localisation ground truth of a row: boxes [k, 4] in network-image coordinates, padded
  with -1, and their consensus (see clips.Clip): the clip's gt_boxes, or else its target box."""
  boxes = np.full((k, 4), -1.0, np.float32)
  if not clip.gt_boxes:
    boxes[0] = target
    return boxes, np.int32(1)
  for j, box in enumerate(clip.gt_boxes[:k]):
    boxes[j] = features.transform_box(box, geo)
  return boxes, np.int32(clip.gt_consensus)


NOISE_RMS = 0.1  # the white noise of the negative-audio rows


def _eval_specs(clips: Sequence[Clip], i: int, mode: str, seed: int, audio_seconds: float,
                frames_per_clip: int, negatives: Optional[Mapping[int, int]] = None):
  """A clip's eval pair specs with the kind of their sound (pairs.AUDIO_KINDS). "pairs": per
  eval time a positive and a negative, whose sound is another video's at the same place in its
  grid; "positives": the middle only; "extended": the middle frame with its own sound, another
  video's (the negative of "pairs", or the sound `negatives[i]` indexes when a pair list is
  given: none when it names no sound for clip i), silence and white noise; "shortcut_pairs":
  as "pairs" with each negative's sound moved off its grid (pairs.off_grid), as the shortcut
  control trains."""
  paired = mode in ("pairs", "shortcut_pairs")
  times = pairs.eval_grid_times(clips[i], audio_seconds, frames_per_clip if paired else 1)
  for f, t in enumerate(times):
    fi = pairs.frame_index_at(clips[i], t)
    yield pairs.PairSpec(i, t, fi, i, t, 1), "own"
    if paired or mode == "extended":
      if negatives is not None:
        other = negatives.get(i)
      else:
        other = pairs._other_clip(clips, i, np.random.default_rng([seed, i, f]))  # pylint: disable=protected-access
      if other is not None:
        other_times = pairs.eval_grid_times(clips[other], audio_seconds, len(times))
        centre = other_times[min(f, len(other_times) - 1)]
        if mode == "shortcut_pairs":
          centre = pairs.off_grid(clips[other], centre, audio_seconds,
                                  np.random.default_rng([seed, i, f, 0x0FF]))
        yield pairs.PairSpec(i, t, fi, other, centre, 0), "other"
    if mode == "extended":
      yield pairs.PairSpec(i, t, fi, i, t, 0), "silence"
      yield pairs.PairSpec(i, t, fi, i, t, 0), "noise"


def _eval_wave(clips: Sequence[Clip], spec: pairs.PairSpec, kind: str, data_cfg,
               seed: int) -> np.ndarray:
  """The sound of an eval row: decoded, or made (silence, seeded white noise)."""
  n = int(round(data_cfg.audio_seconds * data_cfg.sample_rate))
  if kind == "silence":
    return np.zeros(n, np.float32)
  if kind == "noise":
    rng = np.random.default_rng([seed, spec.image_clip, 0x401CE])
    return (NOISE_RMS * rng.standard_normal(n)).astype(np.float32)
  return decode_wave(clips[spec.audio_clip], spec.audio_center, data_cfg)


EVAL_MODES = ("pairs", "positives", "extended", "shortcut_pairs")


def eval_rows(data_cfg, clips: Sequence[Clip], *, seed: int, mode: str = "pairs",
              frames_per_clip: int = 1, negatives: Optional[Mapping[int, Clip]] = None):
  """The evaluation examples in order, one dict per row (unbatched).

  mode "pairs": per clip, frames_per_clip frames spread over its grid, each with its own
  sound (label 1) and another video's (label 0); "positives": the middle frame and its sound;
  "extended": the middle frame with its own sound (label 1), another video's, silence and
  white noise (label 0; `audio_kind` indexes pairs.AUDIO_KINDS); "shortcut_pairs": as
  "pairs" with the negatives' sounds off their grid. `negatives` (extended mode,
  from a published pair list, see pair_lists): clip index -> the clip whose sound is that
  frame's non-sounding pair, in place of the seeded draw. Boxes are in network-image
  coordinates, -1 where unknown: target_box [4], distractor_boxes [D, 4], and the
  localisation ground truth gt_boxes [K, 4] with gt_consensus (see clips.Clip; rows without
  gt_boxes carry their target box with consensus 1). `wave` is the decoded sound the
  spectrogram `audio` was made from (for the report's players).
  """
  if mode not in EVAL_MODES:
    raise DataError(f"eval mode must be one of {', '.join(EVAL_MODES)}, got {mode!r}")
  if mode != "positives" and len(clips) < 2:
    raise DataError(f"AVC pairs need at least 2 clips (a negative is another video's sound), "
                    f"got {len(clips)}: leave avc out of eval.evaluators")
  names = class_names(clips)
  sounds, sound_index = list(clips), None
  if negatives is not None and mode == "extended":
    # A listed sound may be a clip of another split or a sound-only file: append it.
    sound_index = {}
    for i, clip in negatives.items():
      sound_index[i] = len(sounds)
      sounds.append(clip)
  k = max([len(c.distractor_boxes) for c in clips] + [0])
  k_gt = max([len(c.gt_boxes) for c in clips] + [1])
  for i, clip in enumerate(clips):
    frames = {}  # the clip's frames by time: each decoded once
    for spec, kind in _eval_specs(sounds, i, mode, seed, data_cfg.audio_seconds,
                                  frames_per_clip, sound_index):
      label, fi = spec.label, spec.frame_index
      valid = True
      try:
        if spec.frame_time not in frames:
          frames[spec.frame_time] = decode_frame(clip, spec.frame_time, data_cfg)
        wave = _eval_wave(sounds, spec, kind, data_cfg, seed)
        image, audio, geo = network_inputs(frames[spec.frame_time], wave, data_cfg, None)
      except Exception:  # pylint: disable=broad-except  # an unreadable clip counts as padding
        valid = False
        image, audio, geo = _blank(data_cfg)
        wave = np.zeros(int(round(data_cfg.audio_seconds * data_cfg.sample_rate)), np.float32)
      target, distract = box_rows(clip, fi, geo, k)
      gt_boxes, gt_consensus = _ground_truth_rows(clip, target, geo, k_gt)
      yield dict(image=image, audio=audio, wave=np.asarray(wave, np.float32),
                 label=np.int32(label), audio_kind=np.int32(pairs.AUDIO_KINDS.index(kind)),
                 class_id=np.int32(names.index(clip.label) if clip.label else -1),
                 clip_index=np.int32(i), target_box=target, distractor_boxes=distract,
                 gt_boxes=gt_boxes, gt_consensus=gt_consensus, valid=np.bool_(valid))


def _blank(data_cfg):
  s = data_cfg.image_size
  geo = features.sample_geometry(None, data_cfg.resize_size, s, False)
  return (np.zeros((s, s, 3), np.uint8),
          np.full(media.spectrogram_shape(data_cfg), np.log(data_cfg.log_eps), np.float32), geo)


def eval_batches(data_cfg, clips: Sequence[Clip], *, batch_size: int, seed: int,
                 mode: str = "pairs", frames_per_clip: int = 1,
                 negatives: Optional[Mapping[int, Clip]] = None) -> Iterator[dict]:
  """Fixed evaluation batches; the last one padded to batch_size with valid=False rows."""
  rows = []
  for row in eval_rows(data_cfg, clips, seed=seed, mode=mode, frames_per_clip=frames_per_clip,
                       negatives=negatives):
    rows.append(row)
    if len(rows) == batch_size:
      yield _stack(rows)
      rows = []
  if rows:
    pad = dict(rows[-1], valid=np.bool_(False), clip_index=np.int32(-1),
               class_id=np.int32(-1))
    yield _stack(rows + [pad] * (batch_size - len(rows)))


def _stack(rows: list[dict]) -> dict:
  return {key: np.stack([r[key] for r in rows]) for key in rows[0]}
