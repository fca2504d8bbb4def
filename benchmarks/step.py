"""Benchmark: train-step and eval throughput, FLOP/s and MFU, compile time, memory, and the
input pipeline's rate, for each experiment at the sizes asked for.

  python -m benchmarks [--experiments=l3,ave,avol] [--variants=paper,demo] [--steps=5]
      [--json_out=bench.json]

Step timings use fixed synthetic batches already on the device (the model alone); the input
pipeline is timed separately on the embedded dataset with the experiment's data settings, and
`data_wait_fraction` is the share of a step the model would wait for data if both ran on the
same cores one after the other (step time / (step time + batch time)). MFU is achieved FLOP/s
(XLA's cost analysis of the compiled step) over this machine's measured f32 matmul rate.
`--towers` (on by default) also times each tower alone, forward and forward+backward, to show
where a step's time goes; `--layers` goes down to each convolution (benchmarks/layers.py).

When PyTorch is installed (`pip install -e '.[torch]'`; `--torch=false` skips it), the same
net and train step in PyTorch (benchmarks/torch_nets.py: channels-last, eager, one thread per
core, the same parameter count) are timed on the same batch, and `ratio_vs_torch` is avjax's
train clips/s over PyTorch's.
"""

from __future__ import annotations

import json
import resource
import statistics
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from avjax import config as config_lib
from benchmarks import layers
from data_pipeline import media

_EXPERIMENTS = flags.DEFINE_list("experiments", ["l3", "ave", "avol"], "Experiments to time.")
_VARIANTS = flags.DEFINE_list("variants", ["paper", "demo"], "Variants to time.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps (after one warm-up step).")
_BATCH = flags.DEFINE_integer("batch_size", 0, "Global batch (0: 8 for paper, the variant's "
                              "own otherwise).")
_PIPELINE_BATCHES = flags.DEFINE_integer("pipeline_batches", 10, "Batches timed per pipeline.")
_JSON_OUT = flags.DEFINE_string("json_out", "", "Also write the results here.")
_TORCH = flags.DEFINE_bool("torch", True, "Also time the same step in PyTorch, when installed.")
_LAYERS = flags.DEFINE_bool("layers", False, "Also time each tower convolution's forward, input "
                            "gradient and kernel gradient alone (and in PyTorch when installed).")
_TOWERS = flags.DEFINE_bool("towers", True, "Also time each tower's forward and forward+backward "
                            "pass alone (where the step's time goes).")


def matmul_peak_flops(n: int = 2048, repeats: int = 5) -> float:
  """This machine's f32 matmul rate (FLOP/s), the best of a few n x n products on every device
  at once (one device of several fake CPU devices gets only its share of the cores)."""
  devices = jax.devices()
  sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ("d",)),
                                        jax.sharding.PartitionSpec("d"))
  a = jax.device_put(jnp.ones((len(devices), n, n), jnp.float32), sharding)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 * len(devices) / best


def _flops(compiled) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  return float((analysis or {}).get("flops", 0.0))


def _synthetic_batch(config, batch: int) -> dict:
  d = config.data
  rng = np.random.default_rng(0)
  return {
      "image": rng.integers(0, 255, (batch, d.image_size, d.image_size, 3), dtype=np.uint8),
      "audio": rng.normal(size=(batch, *media.spectrogram_shape(d))).astype(np.float32),
      "label": (np.arange(batch) % 2 == 0).astype(np.int32),
      "frame": (np.arange(batch) // 2).astype(np.int32),
      "replaced": np.zeros(batch, np.int32),
  }


def bench_model(spec: str, batch: int, steps: int, peak: float) -> dict:
  """Train-step and eval figures of one experiment variant."""
  # Imported here: the trainer pulls in the data pipeline, not needed for --help.
  from avjax.train import loop  # pylint: disable=g-import-not-at-top
  from avjax.train import state as state_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config(spec, [f"train.batch_size={batch}"])
  s = loop.setup(config)
  device_batch = loop.to_device(_synthetic_batch(config, batch), s.batch_sharding)

  start = time.perf_counter()
  compiled = s.train_step.lower(s.state, device_batch).compile()
  compile_s = time.perf_counter() - start
  # XLA's cost analysis of a partitioned step counts one device's share.
  flops_per_step = _flops(compiled) * jax.device_count()

  state, metrics = compiled(s.state, device_batch)  # warm-up
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, device_batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times)

  infer_s = layers.median_seconds(s.infer, state, device_batch["image"], device_batch["audio"],
                                  repeats=steps)

  achieved = flops_per_step / step_s if flops_per_step else 0.0
  return {
      "experiment": spec, "batch_size": batch, "devices": jax.device_count(),
      "params": state_lib.count_params(state.params),
      "train_clips_per_s": batch / step_s, "train_step_s": step_s,
      "gflop_per_clip": flops_per_step / batch / 1e9,
      "achieved_gflops": achieved / 1e9, "mfu": achieved / peak if peak else 0.0,
      "compile_s": compile_s,
      "eval_clips_per_s": batch / infer_s,
      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
  }, config, s


def bench_towers(config, batch: int, steps: int) -> dict:
  """Each tower alone, in training mode: forward and forward+backward milliseconds."""
  from avjax.models import towers  # pylint: disable=g-import-not-at-top
  data, model = config.data, config.model
  out = {}
  for side, shape, stride in (
      ("vision", (batch, data.image_size, data.image_size, 3), model.vision_stride),
      ("audio", (batch, *media.spectrogram_shape(data)), model.audio_stride)):
    tower = towers.ConvTower(towers.scaled_widths(model.width), stride)
    x = jnp.ones(shape, jnp.float32)
    variables = tower.init(jax.random.PRNGKey(0), x, True)

    def loss(params, x, tower=tower, stats=variables["batch_stats"]):
      outputs, _ = tower.apply({"params": params, "batch_stats": stats}, x, True,
                               mutable=["batch_stats"])
      return jnp.sum(outputs["pooled"])

    params = variables["params"]
    for key, fn in (("forward", jax.jit(loss)), ("forward_backward", jax.jit(jax.grad(loss)))):
      out[f"{side}_{key}_ms"] = 1e3 * layers.median_seconds(fn, params, x, repeats=steps)
  return out


def bench_pipeline(config, s, batches: int) -> float:
  """Input-pipeline clips/s with the experiment's data settings and workers."""
  from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  it = iter(pipeline.train_dataset(config.data, s.dataset.split("train"),
                                   global_batch_size=s.global_batch_size, seed=0,
                                   positives_only=config.train.negatives == "batch"))
  try:
    next(it)  # worker start-up and first decodes
    start = time.perf_counter()
    for _ in range(batches):
      next(it)
    return batches * s.global_batch_size / (time.perf_counter() - start)
  finally:
    it.close()


def torch_baseline():
  """benchmarks.torch_nets, or None when --torch=false or PyTorch is not installed (with a note)."""
  if not _TORCH.value:
    return None
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    print("PyTorch not installed (pip install -e '.[torch]'): no baseline")
    return None
  from benchmarks import torch_nets  # pylint: disable=g-import-not-at-top
  return torch_nets


def main(argv) -> None:
  del argv
  baseline = torch_baseline()
  peak = matmul_peak_flops()
  print(f"f32 matmul peak of this machine: {peak / 1e9:.1f} GFLOP/s "
        f"({jax.device_count()} {jax.devices()[0].platform} device(s))")
  rows = []
  for name in _EXPERIMENTS.value:
    for variant in _VARIANTS.value:
      spec = f"{name}:{variant}"
      default_batch = 8 if variant == "paper" else config_lib.get_config(spec).train.batch_size
      row, config, s = bench_model(spec, _BATCH.value or default_batch, _STEPS.value, peak)
      versus = ""
      if baseline:  # right after avjax's step, so both see the same load on a shared machine
        torch_row = baseline.time_train_step(config, row["batch_size"], _STEPS.value,
                                             _synthetic_batch(config, row["batch_size"]))
        row.update(torch_train_clips_per_s=torch_row["clips_per_s"],
                   ratio_vs_torch=row["train_clips_per_s"] / torch_row["clips_per_s"])
        versus = (f", PyTorch {row['torch_train_clips_per_s']:.2f} clips/s "
                  f"(avjax/PyTorch {row['ratio_vs_torch']:.2f})")
      if _TOWERS.value:
        row.update(bench_towers(config, row["batch_size"], _STEPS.value))
        versus += (f"; towers fwd / fwd+bwd ms: vision {row['vision_forward_ms']:.1f} / "
                   f"{row['vision_forward_backward_ms']:.1f}, audio {row['audio_forward_ms']:.1f}"
                   f" / {row['audio_forward_backward_ms']:.1f}")
      if _LAYERS.value:
        print(f"{spec} convolutions, batch {row['batch_size']}:")
        row["layers"] = layers.profile(config, row["batch_size"], _STEPS.value,
                                       with_torch=baseline is not None)
      pipe = bench_pipeline(config, s, _PIPELINE_BATCHES.value)
      batch_s = row["batch_size"] / pipe
      row.update(pipeline_clips_per_s=pipe,
                 data_wait_fraction=batch_s / (batch_s + row["train_step_s"]))
      rows.append(row)
      print(f"{spec:11s} batch {row['batch_size']:3d}: train {row['train_clips_per_s']:7.2f} "
            f"clips/s, {row['achieved_gflops']:6.1f} GFLOP/s (MFU {row['mfu']:.0%}), "
            f"compile {row['compile_s']:.1f} s, eval {row['eval_clips_per_s']:.1f} clips/s, "
            f"pipeline {pipe:.1f} clips/s, peak RSS {row['peak_rss_mib']:.0f} MiB{versus}",
            flush=True)
  result = {"matmul_peak_gflops": peak / 1e9, "rows": rows}
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, "w") as f:
      json.dump(result, f, indent=2)
    print(f"written to {_JSON_OUT.value}")


if __name__ == "__main__":
  app.run(main)
