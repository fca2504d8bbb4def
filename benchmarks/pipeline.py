"""Throughput of the train pipeline: clips/s per worker count and size, and per-stage times.

Usage: python -m benchmarks.pipeline [--json_out FILE] [--batches N]
Runs on the embedded dataset when it can be built, else on small generated clips.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from absl import app, flags
import numpy as np

from data_pipeline import config, decode, features, pairs, pipeline
from data_pipeline.clips import Clip

_JSON_OUT = flags.DEFINE_string("json_out", "", "Also write the results as JSON here.")
_BATCHES = flags.DEFINE_integer("batches", 8, "Batches of 8 timed per setting.")

# Reduced size used by the small experiment variants.
DEMO = dict(sample_rate=16000, n_fft=256, win_length=160, hop_length=160, spec_frames=100,
            image_size=112, resize_size=128)


def _clips() -> tuple[list[Clip], str]:
  try:
    from data_pipeline import index  # pylint: disable=g-import-not-at-top
    from embedded_dataset import build  # pylint: disable=g-import-not-at-top
    cfg = config.default_data_config()
    cfg.root = build.ensure_embedded()
    return index.load_dataset(cfg).split("train"), "embedded"
  except Exception:  # pylint: disable=broad-except  # embedded set unavailable: make clips
    import av  # pylint: disable=g-import-not-at-top,unused-import
    root = tempfile.mkdtemp(prefix="avjax_bench_")
    return [_factory_clip(root, i) for i in range(16)], "generated"


def _factory_clip(root: str, i: int) -> Clip:
  """A 3 s 256x256 8 fps clip with a tone, written with PyAV."""
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
  import media_factory  # pylint: disable=g-import-not-at-top
  path = media_factory.write_video(os.path.join(root, f"clip{i}.mp4"), seconds=3.0, fps=8,
                                   size=(256, 256))
  return Clip(path, path, 3.0, 8.0, 16000, 1, clip_id=str(i))


def _stages(cfg, clips, n=20) -> dict:
  """Mean milliseconds per stage over n positive pairs."""
  rng = np.random.default_rng(0)
  times = dict(decode_frame=0.0, decode_audio=0.0, spectrogram=0.0, augmentation=0.0)
  for i in range(n):
    spec = pairs.sample_pair(clips, i % len(clips), 1, rng, cfg)
    t0 = time.perf_counter()
    frame = decode.read_frame(clips[spec.image_clip].path, spec.frame_time)
    t1 = time.perf_counter()
    wave = decode.read_audio(clips[spec.audio_clip].audio_path, spec.audio_center, 1.0,
                             cfg.sample_rate)
    t2 = time.perf_counter()
    features.spectrogram_from_config(features.apply_gain(wave, rng, cfg.gain), cfg)
    t3 = time.perf_counter()
    features.image_input(frame, cfg, rng)
    t4 = time.perf_counter()
    for k, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
      times[k] += dt * 1000 / n
  return {k: round(v, 2) for k, v in times.items()}


def _throughput(cfg, clips, workers: int, batches: int) -> float:
  cfg = config.default_data_config() if cfg is None else cfg
  cfg.num_workers = workers
  it = iter(pipeline.train_dataset(cfg, clips, global_batch_size=8, seed=0))
  next(it)  # worker start-up and first decode not counted
  t = time.perf_counter()
  for _ in range(batches):
    next(it)
  rate = 8 * batches / (time.perf_counter() - t)
  it.close()
  return round(rate, 2)


def main(argv) -> None:
  del argv
  clips, source = _clips()
  results = dict(source=source, clips=len(clips), sizes={})
  for name in ("paper", "demo"):
    cfg = config.default_data_config()
    if name == "demo":
      cfg.update(DEMO)
    features.spectrogram_from_config(np.zeros(cfg.sample_rate, np.float32), cfg)  # warm-up
    row = dict(stages_ms=_stages(cfg, clips), clips_per_s={})
    for workers in (1, 2, 4):
      row["clips_per_s"][workers] = _throughput(cfg, clips, workers, _BATCHES.value)
      print(f"{name}: {workers} workers {row['clips_per_s'][workers]} clips/s", flush=True)
    print(f"{name}: stage ms {row['stages_ms']}", flush=True)
    results["sizes"][name] = row
  print(json.dumps(results, indent=1))
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  app.run(main)
