"""Benchmark: train-step and eval throughput, FLOP/s and MFU, compile time, memory, and the
input pipeline's rate, for each experiment at the sizes asked for.

  python -m benchmarks [--experiments=l3,ave,avol] [--variants=paper,demo] [--steps=5]
      [--json_out=bench.json]

Step timings use fixed synthetic batches already on the device (the model alone); the input
pipeline is timed separately on the embedded dataset with the experiment's data settings, and
`data_wait_fraction` is the share of a step the model would wait for data if both ran on the
same cores one after the other (step time / (step time + batch time)). MFU is achieved FLOP/s
(XLA's cost analysis of the compiled step) over this machine's measured f32 matmul rate.
On the CPU each step is timed on both convolution paths (`--kernels=onednn,xla`): oneDNN's
kernels as custom calls (avjax.models.onednn, the default there) and XLA's own. XLA's cost
analysis cannot see into a custom call, so both paths' FLOPs are those of the XLA step.
`--towers` (on by default) also times each tower alone, forward and forward+backward, to show
where a step's time goes; `--layers` goes down to each convolution (benchmarks/layers.py).

When PyTorch is installed (`pip install -e '.[torch]'`; `--torch=false` skips it), the same
net and train step in PyTorch (benchmarks/torch_nets.py: channels-last, eager, one thread per
core, the same parameter count) are timed on the same batch, and `ratio_vs_torch` is avjax's
train clips/s over PyTorch's.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from avjax import config as config_lib
from avjax.models import onednn
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
_KERNELS = flags.DEFINE_list("kernels", ["onednn", "xla"], "Convolution paths to time: onednn "
                              "(CPU only; skipped with a note where it is unavailable), xla.")
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


@contextlib.contextmanager
def conv_kernels(kernels: str):
  """Programs traced inside run their convolutions on `kernels` ($AVJAX_CONV_KERNELS)."""
  saved = os.environ.get(onednn.ENV)
  os.environ[onednn.ENV] = kernels
  try:
    yield
  finally:
    if saved is None:
      os.environ.pop(onednn.ENV)
    else:
      os.environ[onednn.ENV] = saved


def kernel_paths(asked: list[str]) -> list[str]:
  """The paths of `asked` that run here, XLA's first (its FLOPs serve both); notes the rest."""
  unknown = sorted(set(asked) - {"onednn", "xla"})
  if unknown:
    raise app.UsageError(f"--kernels: unknown {', '.join(unknown)}; use onednn, xla")
  paths = [k for k in ("xla", "onednn") if k in asked]
  if "onednn" in paths and (jax.default_backend() != "cpu" or not onednn.version()):
    print("oneDNN kernels " + ("are CPU-only" if jax.default_backend() != "cpu"
                               else "unavailable here (see the warning above)")
          + ": not timed")
    paths.remove("onednn")
  if not paths:
    raise app.UsageError("--kernels: nothing to time here; add xla")
  return paths


def _compile_step(config, batch: int):
  """(setup, a synthetic device batch, the compiled train step, compile seconds)."""
  # Imported here: the trainer pulls in the data pipeline, not needed for --help.
  from avjax.train import loop  # pylint: disable=g-import-not-at-top
  s = loop.setup(config)
  device_batch = loop.to_device(_synthetic_batch(config, batch), s.batch_sharding)
  start = time.perf_counter()
  compiled = s.train_step.lower(s.state, device_batch).compile()
  return s, device_batch, compiled, time.perf_counter() - start


def bench_model(spec: str, batch: int, steps: int, peak: float, kernels: str = "xla",
                flops_per_step: float = 0.0) -> dict:
  """Train-step and eval figures of one experiment variant with its convolutions on `kernels`;
  MFU from `flops_per_step` when given (the XLA step's), else this step's cost analysis."""
  from avjax.train import state as state_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.get_config(spec, [f"train.batch_size={batch}"])
  with conv_kernels(kernels):
    s, device_batch, compiled, compile_s = _compile_step(config, batch)
    # XLA's cost analysis of a partitioned step counts one device's share.
    flops_per_step = flops_per_step or _flops(compiled) * jax.device_count()

    state, metrics = compiled(s.state, device_batch)  # warm-up
    jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      state, metrics = compiled(state, device_batch)
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    infer_s = layers.median_seconds(s.infer, state, device_batch["image"],
                                    device_batch["audio"], repeats=steps)

  achieved = flops_per_step / step_s if flops_per_step else 0.0
  return {
      "experiment": spec, "kernels": kernels, "batch_size": batch,
      "devices": jax.device_count(), "params": state_lib.count_params(state.params),
      "train_clips_per_s": batch / step_s, "train_step_s": step_s,
      "flops_per_step": flops_per_step, "gflop_per_clip": flops_per_step / batch / 1e9,
      "achieved_gflops": achieved / 1e9, "mfu": achieved / peak if peak else 0.0,
      "compile_s": compile_s,
      "eval_clips_per_s": batch / infer_s,
      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
  }, config, s


def xla_step_flops(spec: str, batch: int) -> float:
  """FLOPs of the XLA step (compiled, not run): what a oneDNN-only run's MFU is measured by."""
  config = config_lib.get_config(spec, [f"train.batch_size={batch}"])
  with conv_kernels("xla"):
    return _flops(_compile_step(config, batch)[2]) * jax.device_count()


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
  paths = kernel_paths(_KERNELS.value)
  if "onednn" in paths:
    print(f"oneDNN {onednn.version()} kernels (OpenMP threads: "
          f"{os.environ.get('OMP_NUM_THREADS', 'all cores')})")
  rows = []
  for name in _EXPERIMENTS.value:
    for variant in _VARIANTS.value:
      spec = f"{name}:{variant}"
      default_batch = 8 if variant == "paper" else config_lib.get_config(spec).train.batch_size
      batch = _BATCH.value or default_batch
      spec_rows, flops = [], 0.0 if "xla" in paths else xla_step_flops(spec, batch)
      for kernels in paths:
        row, config, s = bench_model(spec, batch, _STEPS.value, peak, kernels, flops)
        flops = row["flops_per_step"]
        if _TOWERS.value:
          with conv_kernels(kernels):
            row.update(bench_towers(config, batch, _STEPS.value))
        spec_rows.append(row)
      if baseline:  # right after avjax's steps, so all see the same load on a shared machine
        torch_row = baseline.time_train_step(config, batch, _STEPS.value,
                                             _synthetic_batch(config, batch))
        for row in spec_rows:
          row.update(torch_train_clips_per_s=torch_row["clips_per_s"],
                     ratio_vs_torch=row["train_clips_per_s"] / torch_row["clips_per_s"])
      if _LAYERS.value:
        print(f"{spec} convolutions, batch {batch}:")
        profile = layers.profile(config, batch, _STEPS.value, with_torch=baseline is not None,
                                 kernels=tuple(paths))
        for row in spec_rows:
          row["layers"] = profile
      pipe = bench_pipeline(config, s, _PIPELINE_BATCHES.value)
      batch_s = batch / pipe
      for row in spec_rows:
        row.update(pipeline_clips_per_s=pipe,
                   data_wait_fraction=batch_s / (batch_s + row["train_step_s"]))
        line = (f"{spec:11s} {row['kernels']:6s} batch {batch:3d}: train "
                f"{row['train_clips_per_s']:7.2f} clips/s, {row['achieved_gflops']:6.1f} GFLOP/s "
                f"(MFU {row['mfu']:.0%}), compile {row['compile_s']:.1f} s, eval "
                f"{row['eval_clips_per_s']:.1f} clips/s, pipeline {pipe:.1f} clips/s, peak RSS "
                f"{row['peak_rss_mib']:.0f} MiB")
        if baseline:
          line += (f"; PyTorch {row['torch_train_clips_per_s']:.2f} clips/s "
                   f"(avjax/PyTorch {row['ratio_vs_torch']:.2f})")
        if _TOWERS.value:
          line += (f"; towers fwd / fwd+bwd ms: vision {row['vision_forward_ms']:.1f} / "
                   f"{row['vision_forward_backward_ms']:.1f}, audio "
                   f"{row['audio_forward_ms']:.1f} / {row['audio_forward_backward_ms']:.1f}")
        print(line, flush=True)
      rows.extend(spec_rows)
  result = {"matmul_peak_gflops": peak / 1e9, "rows": rows}
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, "w") as f:
      json.dump(result, f, indent=2)
    print(f"written to {_JSON_OUT.value}")


if __name__ == "__main__":
  app.run(main)
