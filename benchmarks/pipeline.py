"""Throughput of the train pipeline: clips/s per worker count and size, and per-stage times.

Usage: python -m benchmarks.pipeline [--json_out FILE] [--batches N] [--packed]
Runs on the embedded dataset when it can be built, else on small generated clips. --packed
instead compares training from packed shards (python -m data_pipeline.pack) with training
from the videos, at paper size with the same workers: on the embedded set and on generated
long videos (--long_videos of --long_seconds each), in this process (0 workers) and with 1 and
2 worker processes, with the time each took to pack.
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
_PACKED = flags.DEFINE_bool("packed", False, "Compare packed shards with the videos.")
_LONG_VIDEOS = flags.DEFINE_integer("long_videos", 12, "Long videos generated for --packed.")
_LONG_SECONDS = flags.DEFINE_float("long_seconds", 40.0, "Their length in seconds.")

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


def _long_video_folder(root: str, n: int, seconds: float) -> str:
  """A folder dataset of n long 25 fps 320x240 videos with 48 kHz sound (all in train)."""
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
  import media_factory  # pylint: disable=g-import-not-at-top
  for i in range(n):
    media_factory.write_video(os.path.join(root, "train", f"class{i % 2}", f"long{i}.mp4"),
                              seconds=seconds, fps=25, size=(320, 240), sample_rate=48000,
                              tone_hz=300.0 + 100 * i)
  return root


def _packed_vs_video(name: str, src, workers: tuple, batches: int) -> dict:
  """Packs src's dataset, then times the train pipeline from the videos and from the shards."""
  from data_pipeline import index, pack  # pylint: disable=g-import-not-at-top
  out = tempfile.mkdtemp(prefix=f"avjax_packed_{name}_")
  t = time.perf_counter()
  manifest = pack.run(src, config.default_pack_config(), out, progress=False)
  row = dict(clips=manifest["clips"], pack_seconds=round(time.perf_counter() - t, 1),
             packed_mb=round(manifest["bytes"] / 2**20, 1), clips_per_s={})
  dst = config.default_data_config()
  dst.root = out
  video_clips = index.load_dataset(src, progress=False).split("train")
  packed_clips = index.load_dataset(dst, progress=False).split("train")
  for w in workers:
    v = _throughput(src, video_clips, w, batches)
    p = _throughput(dst, packed_clips, w, batches)
    row["clips_per_s"][w] = dict(video=v, packed=p, ratio=round(p / v, 2))
    print(f"{name}: {w} workers: video {v} clips/s, packed {p} clips/s ({p / v:.1f}x)",
          flush=True)
  return row


def packed_main() -> dict:
  """--packed: the embedded set and long videos, packed vs video, at paper size."""
  from embedded_dataset import build  # pylint: disable=g-import-not-at-top
  results = {}
  src = config.default_data_config()
  src.root = build.ensure_embedded()
  batches = max(_BATCHES.value, 40)  # beyond what the workers hold ready when timing starts
  results["embedded"] = _packed_vs_video("embedded", src, (0, 1, 2), batches)
  src = config.default_data_config()
  src.root = _long_video_folder(tempfile.mkdtemp(prefix="avjax_long_"), _LONG_VIDEOS.value,
                                _LONG_SECONDS.value)
  src.cache_dir = tempfile.mkdtemp(prefix="avjax_long_cache_")
  results[f"long_{_LONG_SECONDS.value:g}s"] = _packed_vs_video("long", src, (0, 1, 2), batches)
  return results


def main(argv) -> None:
  del argv
  if _PACKED.value:
    results = packed_main()
    print(json.dumps(results, indent=1))
    if _JSON_OUT.value:
      with open(_JSON_OUT.value, "w") as f:
        json.dump(results, f, indent=1)
    return
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
