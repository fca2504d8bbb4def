"""Tests of AVC pair sampling (pure functions, no media)."""

import math

import numpy as np

from data_pipeline import config, pairs, pipeline
from data_pipeline.clips import Clip


def _clips():
  out = [Clip(f"v{i}.mp4", f"v{i}.mp4", 3.0 + i, fps, 16000, 1, clip_id=str(i))
         for i, fps in enumerate([8.0, 25.0, 29.97, 8.0, 12.5])]
  out.append(Clip("v0.mp4", "v0.mp4", 2.0, 8.0, 16000, 1, start=3.0, clip_id="seg"))  # same file
  return out


def _on_grid(t, fps):
  return abs(t * fps - round(t * fps)) < 1e-6 * fps


def _sample_all(cfg, n=400):
  clips = _clips()
  specs = []
  for pos in range(n):
    rng = np.random.default_rng([0, pos])
    specs.append(pairs.sample_pair(clips, pos % len(clips), pairs.label_for_position(pos),
                                   rng, cfg))
  return clips, specs


def test_all_centres_on_frame_grid():
  cfg = config.default_data_config()
  cfg.jitter_seconds = 1.0
  clips, specs = _sample_all(cfg)
  for s in specs:
    a = clips[s.audio_clip]
    assert _on_grid(s.frame_time, clips[s.image_clip].fps)
    assert _on_grid(s.audio_center, a.fps)
    # The 1 s window fits inside the audio clip.
    assert a.start + 0.5 - 1e-9 <= s.audio_center <= a.start + a.duration - 0.5 + 1e-9
  assert any(s.label and s.audio_center != s.frame_time for s in specs)  # jitter happened


def test_positive_centre_is_frame_time_without_jitter():
  clips, specs = _sample_all(config.default_data_config())
  for s in specs:
    if s.label:
      assert s.audio_clip == s.image_clip and s.audio_center == s.frame_time


def test_control_centres_off_grid():
  cfg = config.default_data_config()
  cfg.frame_grid = False
  clips, specs = _sample_all(cfg)
  off = [not _on_grid(s.audio_center, clips[s.audio_clip].fps) for s in specs]
  assert all(off)
  assert all(_on_grid(s.frame_time, clips[s.image_clip].fps) for s in specs)


def test_negatives_from_another_video():
  clips, specs = _sample_all(config.default_data_config())
  negs = [s for s in specs if not s.label]
  assert negs
  for s in negs:
    assert s.audio_clip != s.image_clip
    assert clips[s.audio_clip].path != clips[s.image_clip].path


def test_half_positives():
  _, specs = _sample_all(config.default_data_config(), n=300)
  assert sum(s.label for s in specs) == 150


def test_short_and_still_clips():
  cfg = config.default_data_config()
  clips = [Clip("short.mp4", "short.mp4", 0.5, 10.0, 16000, 1),
           Clip("still.jpg", "still.wav", 2.0, None, 16000, 1)]
  for seed in range(50):
    s = pairs.sample_pair(clips, 0, 1, np.random.default_rng(seed), cfg)
    assert 0 <= s.frame_time < 0.5 and _on_grid(s.audio_center, 10.0)
    s = pairs.sample_pair(clips, 1, 1, np.random.default_rng(seed), cfg)
    assert s.frame_index == 0 and 0.5 <= s.audio_center <= 1.5


def test_deterministic_and_frame_index():
  cfg = config.default_data_config()
  clips = _clips()
  a = pairs.sample_pair(clips, 1, 1, np.random.default_rng(7), cfg)
  b = pairs.sample_pair(clips, 1, 1, np.random.default_rng(7), cfg)
  assert a == b
  assert a.frame_index == math.floor(a.frame_time * 25.0 + 1e-6)
  assert pairs.middle_grid_time(clips[0], 1.0) == 1.5


def test_eval_grid_times_spread_over_the_grid():
  clips = _clips()
  for clip in clips[:5]:
    k_lo, k_hi = pairs.grid_indices(clip, 1.0)
    times = pairs.eval_grid_times(clip, 1.0, 5)
    assert len(times) == 5 and times == sorted(times)
    assert all(_on_grid(t, clip.fps) for t in times)
    assert math.isclose(times[0] * clip.fps, k_lo) and math.isclose(times[-1] * clip.fps, k_hi)
    assert pairs.eval_grid_times(clip, 1.0, 1) == [pairs.middle_grid_time(clip, 1.0)]
  still = Clip("a.jpg", "a.wav", 4.0, None, 16000, 1)
  assert pairs.eval_grid_times(still, 1.0, 5) == [2.0]  # the middle of its recording
  late = Clip("b.jpg", "b.wav", 3.0, None, 16000, 1, start=10.0)
  assert pairs.eval_grid_times(late, 1.0, 1) == [11.5]
  # A clip with fewer grid frames than asked gives each one once.
  short = Clip("s.mp4", "s.mp4", 1.5, 4.0, 16000, 1)
  assert pairs.eval_grid_times(short, 1.0, 10) == [0.5, 0.75, 1.0]


def test_shortcut_control_moves_only_the_negatives_off_the_grid():
  cfg = config.default_data_config()
  cfg.shortcut_control = True
  clips, specs = _sample_all(cfg)
  for spec in specs:
    on = _on_grid(spec.audio_center, clips[spec.audio_clip].fps)
    assert on == bool(spec.label), spec  # positives on the grid, negatives never
  # Evaluated the control's way: the same pairs as "pairs", the negatives' sounds off the grid.
  grid = [s for i in range(len(clips)) for s in pipeline._eval_specs(  # pylint: disable=protected-access
      clips, i, "pairs", 0, 1.0, 3)]
  control = [s for i in range(len(clips)) for s in pipeline._eval_specs(  # pylint: disable=protected-access
      clips, i, "shortcut_pairs", 0, 1.0, 3)]
  assert [(s.image_clip, s.frame_time, s.audio_clip, s.label) for s, _ in grid] == [
      (s.image_clip, s.frame_time, s.audio_clip, s.label) for s, _ in control]
  for (g, _), (c, _) in zip(grid, control):
    fps = clips[c.audio_clip].fps
    assert _on_grid(g.audio_center, fps)
    assert _on_grid(c.audio_center, fps) == bool(c.label)
    if not c.label:
      assert 0.25 / fps - 1e-9 <= abs(c.audio_center - g.audio_center) <= 0.75 / fps + 1e-9
