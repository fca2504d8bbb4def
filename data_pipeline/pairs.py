"""Audio-visual correspondence (AVC) pair sampling as pure functions of (clips, index, rng).

Every audio centre, positive and negative, lies on its clip's frame grid (a multiple of 1/fps)
so the network cannot tell pairs apart from encoder frame-alignment artefacts (Objects that
Sound). `frame_grid=False` is the control that draws centres off the grid. Times are in the
file's timeline (clip.start included), as the decoder reads them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from data_pipeline.clips import Clip

_EPS = 1e-9

# The sound of an evaluation row: the frame's own, another video's, silence or white noise.
AUDIO_KINDS = ("own", "other", "silence", "noise")


@dataclasses.dataclass(frozen=True)
class PairSpec:
  """What to decode for one example."""
  image_clip: int      # index into clips of the frame's clip
  frame_time: float    # seconds in the image file
  frame_index: int     # video frame index inside the clip (0 for a still image)
  audio_clip: int      # index into clips of the audio's clip
  audio_center: float  # seconds in the audio file
  label: int           # 1 = audio belongs with the frame


def _centre_range(clip: Clip, audio_seconds: float) -> tuple[float, float]:
  """Where a centre keeps the whole audio window inside the clip; the clip span if too short."""
  half = audio_seconds / 2.0
  lo, hi = clip.start + half, clip.start + clip.duration - half
  if lo > hi:
    return clip.start, clip.start + clip.duration
  return lo, hi


def grid_indices(clip: Clip, audio_seconds: float) -> tuple[int, int]:
  """First and last frame number k (time k / fps) usable as a centre; frames in the clip."""
  lo, hi = _centre_range(clip, audio_seconds)
  fps = clip.fps
  k_lo, k_hi = math.ceil(lo * fps - _EPS), math.floor(hi * fps + _EPS)
  # The last frame shown starts strictly before the end of the clip.
  k_last = math.ceil((clip.start + clip.duration) * fps - _EPS) - 1
  k_first = math.ceil(clip.start * fps - _EPS)
  k_hi = min(k_hi, k_last)
  if k_lo > k_hi:
    return k_first, max(k_first, k_last)
  return k_lo, k_hi


def _frame_index(clip: Clip, t: float) -> int:
  if not clip.fps:
    return 0
  return max(0, int(math.floor((t - clip.start) * clip.fps + 1e-6)))


def _draw_centre(clip: Clip, rng: np.random.Generator, data_cfg) -> float:
  """A negative's audio centre anywhere valid in the clip: on its grid, or uniform when the
  grid is off (frame_grid false) or the shortcut control moves negatives off it."""
  if clip.fps and data_cfg.frame_grid and not data_cfg.get("shortcut_control", False):
    k_lo, k_hi = grid_indices(clip, data_cfg.audio_seconds)
    return int(rng.integers(k_lo, k_hi + 1)) / clip.fps
  lo, hi = _centre_range(clip, data_cfg.audio_seconds)
  return float(rng.uniform(lo, hi))


def _positive_centre(clip: Clip, frame_time: float, rng: np.random.Generator,
                     data_cfg) -> float:
  """The frame's time plus optional jitter, kept valid (and on the grid unless the control)."""
  lo, hi = _centre_range(clip, data_cfg.audio_seconds)
  jitter = data_cfg.jitter_seconds
  if not clip.fps:
    # A still image belongs with its whole recording: no frame time to jitter around.
    return float(rng.uniform(lo, hi))
  if data_cfg.frame_grid:
    k = int(round(frame_time * clip.fps))
    k_lo, k_hi = grid_indices(clip, data_cfg.audio_seconds)
    steps = int(math.floor(jitter * clip.fps + _EPS))
    if steps > 0:
      k = int(rng.integers(max(k_lo, k - steps), min(k_hi, k + steps) + 1))
    return k / clip.fps
  # Control: a continuous offset inside the frame's own interval, plus continuous jitter.
  # Reflected back inside the valid range rather than clamped, since clamping lands on the grid.
  offset = rng.uniform(0.0, 1.0 / clip.fps)
  if jitter > 0:
    offset += rng.uniform(-jitter, jitter)
  centre = frame_time + offset
  if centre > hi:
    centre = 2 * hi - centre
  if centre < lo:
    centre = 2 * lo - centre
  return float(np.clip(centre, lo, hi))


def _other_clip(clips: Sequence[Clip], index: int, rng: np.random.Generator) -> int:
  """A clip of a different video (different file) than clips[index]."""
  n = len(clips)
  own = (clips[index].path, clips[index].audio_path)
  for _ in range(16):
    j = int(rng.integers(0, n - 1))
    j += j >= index  # never index itself
    if clips[j].path not in own and clips[j].audio_path not in own:
      return j
  others = [j for j in range(n) if clips[j].path not in own and clips[j].audio_path not in own]
  if not others:
    others = [j for j in range(n) if j != index]
  return others[int(rng.integers(0, len(others)))]


def sample_pair(clips: Sequence[Clip], clip_index: int, label: int, rng: np.random.Generator,
                data_cfg, frame_rng: np.random.Generator | None = None) -> PairSpec:
  """One AVC example whose frame comes from clips[clip_index].

  Args:
    clips: the clip table (at least two clips for negatives).
    clip_index: the image's clip.
    label: 1 for a positive (audio centred on the frame's time, optionally jittered), 0 for a
      negative (audio from a clip of another video).
    rng: the only source of randomness.
    data_cfg: uses audio_seconds, frame_grid, jitter_seconds.
    frame_rng: draws the frame time when given (else rng), so that a positive and a negative
      can share their frame.
  """
  clip = clips[clip_index]
  if clip.fps:
    k_lo, k_hi = grid_indices(clip, data_cfg.audio_seconds)
    frame_time = int((frame_rng or rng).integers(k_lo, k_hi + 1)) / clip.fps
  else:
    frame_time = clip.start
  if label:
    audio_clip, centre = clip_index, _positive_centre(clip, frame_time, rng, data_cfg)
  else:
    if len(clips) < 2:
      raise ValueError("negatives need at least two clips")
    audio_clip = _other_clip(clips, clip_index, rng)
    centre = _draw_centre(clips[audio_clip], rng, data_cfg)
  return PairSpec(clip_index, frame_time, _frame_index(clip, frame_time), audio_clip,
                  centre, int(label))


def label_for_position(position: int) -> int:
  """Alternating labels along the shuffled epoch: exactly half positives (for an even count)."""
  return 1 - position % 2


def off_grid(clip: Clip, t: float, audio_seconds: float, rng: np.random.Generator) -> float:
  """A grid time t moved off the clip's grid by a uniform fraction in [0.25, 0.75] of a frame
  (either way, kept inside the valid centres): how the shortcut control places negatives."""
  if not clip.fps:
    return t
  lo, hi = _centre_range(clip, audio_seconds)
  shift = rng.uniform(0.25, 0.75) / clip.fps
  return float(t + shift if t + shift <= hi else max(lo, t - shift))


def middle_grid_time(clip: Clip, audio_seconds: float) -> float:
  """The grid time nearest the middle of the clip (fixed choice for evaluation).

  A still image has no grid and its one frame stands for the whole recording: the middle of
  the recording, so the sound window is zero-padded only when the recording is shorter than it.
  """
  if not clip.fps:
    return clip.start + clip.duration / 2.0
  k_lo, k_hi = grid_indices(clip, audio_seconds)
  mid = round((clip.start + clip.duration / 2.0) * clip.fps)
  return min(max(mid, k_lo), k_hi) / clip.fps


def eval_grid_times(clip: Clip, audio_seconds: float, n: int) -> list[float]:
  """n evaluation times evenly spread over the clip's grid (n = 1: the middle grid time);
  fewer when the clip has fewer grid frames, one (the middle of its recording) for a still
  image."""
  if n <= 1 or not clip.fps:
    return [middle_grid_time(clip, audio_seconds)]
  k_lo, k_hi = grid_indices(clip, audio_seconds)
  ks = sorted({int(round(k)) for k in np.linspace(k_lo, k_hi, n)})
  return [k / clip.fps for k in ks]


def frame_index_at(clip: Clip, t: float) -> int:
  """The clip's video frame index shown at time t (0 for a still image)."""
  return _frame_index(clip, t)
