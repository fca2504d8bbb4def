"""Where a train step's time goes, layer by layer: each tower convolution's forward, input
gradient and kernel gradient, timed alone in avjax (`avjax.models.conv`, as the towers run it)
on each kernel path asked for (oneDNN's custom calls, XLA's own) and, when PyTorch is
installed, with PyTorch's channels-last kernels on the same shapes.

Used by `python -m benchmarks --layers`; `conv_layers` lists the shapes.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp

from avjax.models import conv, towers
from data_pipeline import media


@dataclasses.dataclass(frozen=True)
class ConvLayer:
  """One 3x3 convolution of a tower: input [batch, height, width, in_channels]."""
  name: str
  batch: int
  height: int
  width: int
  in_channels: int
  out_channels: int
  stride: int

  @property
  def gflop(self) -> float:
    """Forward multiply-adds x 2 (each gradient costs the same again)."""
    out_h, out_w = -(-self.height // self.stride), -(-self.width // self.stride)
    return 2 * self.batch * out_h * out_w * self.in_channels * self.out_channels * 9 / 1e9


def conv_layers(config, batch: int) -> list[ConvLayer]:
  """The convolutions of both towers of an experiment, in order, as `towers.ConvTower` runs
  them: SAME convolutions, 2x2 VALID max-pools after the first three blocks."""
  data, model = config.data, config.model
  layers = []
  for side, (height, width, channels), stride in (
      ("vision", (data.image_size, data.image_size, 3), model.vision_stride),
      ("audio", media.spectrogram_shape(data), model.audio_stride)):
    for block, out_channels in enumerate(towers.scaled_widths(model.width)):
      for layer in range(2):
        s = stride if (block, layer) == (0, 0) else 1
        layers.append(ConvLayer(f"{side} conv{block + 1}_{layer + 1}", batch, height, width,
                                channels, out_channels, s))
        height, width, channels = -(-height // s), -(-width // s), out_channels
      if block < 3:
        height, width = height // 2, width // 2
  return layers


def median_seconds(fn: Callable[..., object], *args, repeats: int) -> float:
  """Median wall time of fn(*args) after one untimed call (compilation, warm-up); waits for
  JAX's asynchronous results (other values, PyTorch's tensors included, pass through)."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def time_avjax(layer: ConvLayer, repeats: int, kernels: str = "xla") -> dict:
  """Forward, input-gradient and kernel-gradient ms of one layer in avjax on `kernels`."""
  x = jnp.ones((layer.batch, layer.height, layer.width, layer.in_channels), jnp.float32)
  kernel = jnp.full((3, 3, layer.in_channels, layer.out_channels), 0.01, jnp.float32)

  def run(x_, k_):
    return conv.conv3x3(x_, k_, layer.stride, kernels)
  out = jax.eval_shape(run, x, kernel)
  grad_out = jnp.ones(out.shape, out.dtype)
  forward = jax.jit(run)
  grad_input = jax.jit(lambda x_, k_, g: jax.vjp(lambda y: run(y, k_), x_)[1](g)[0])
  grad_kernel = jax.jit(lambda x_, k_, g: jax.vjp(lambda k: run(x_, k), k_)[1](g)[0])
  return {
      "forward_ms": 1e3 * median_seconds(forward, x, kernel, repeats=repeats),
      "grad_input_ms": 1e3 * median_seconds(grad_input, x, kernel, grad_out, repeats=repeats),
      "grad_kernel_ms": 1e3 * median_seconds(grad_kernel, x, kernel, grad_out, repeats=repeats),
  }


def time_torch(layer: ConvLayer, repeats: int) -> dict:
  """The same three timings with PyTorch (channels-last, one thread per core, no autograd)."""
  import torch  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_nets  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(torch_nets.cpu_cores())
  last = torch.channels_last
  x = torch.ones(layer.batch, layer.in_channels, layer.height, layer.width).to(memory_format=last)
  kernel = torch.full((layer.out_channels, layer.in_channels, 3, 3), 0.01).to(memory_format=last)
  f = torch.nn.functional
  with torch.no_grad():
    grad_out = torch.ones_like(f.conv2d(x, kernel, stride=layer.stride, padding=1))
    return {
        "torch_forward_ms": 1e3 * median_seconds(
            lambda: f.conv2d(x, kernel, stride=layer.stride, padding=1), repeats=repeats),
        "torch_grad_input_ms": 1e3 * median_seconds(lambda: torch.nn.grad.conv2d_input(
            x.shape, kernel, grad_out, stride=layer.stride, padding=1), repeats=repeats),
        "torch_grad_kernel_ms": 1e3 * median_seconds(lambda: torch.nn.grad.conv2d_weight(
            x, kernel.shape, grad_out, stride=layer.stride, padding=1), repeats=repeats),
    }


_TIMES = ("forward_ms", "grad_input_ms", "grad_kernel_ms")


def profile(config, batch: int, repeats: int, with_torch: bool,
            kernels: tuple[str, ...] = ("xla",)) -> list[dict]:
  """One row per convolution, with `{path}_forward_ms` etc. for each kernel path and
  `torch_forward_ms` etc.; prints a table as it goes. The first layer's input gradient is
  timed too, though a train step does not need it (its input is the data)."""
  paths = list(kernels) + (["torch"] if with_torch else [])
  names = {"onednn": "oneDNN", "xla": "XLA", "torch": "PyTorch"}
  print(f"  {'layer':17s} {'input':>18s} {'out':>4s} {'GFLOP':>6s}"
        + "".join(f"   {names[p] + ' fwd / dx / dw ms':>26s}" for p in paths))
  rows = []
  for layer in conv_layers(config, batch):
    row = {**dataclasses.asdict(layer), "gflop": layer.gflop}
    for path in kernels:
      row.update({f"{path}_{k}": v for k, v in time_avjax(layer, repeats, path).items()})
    if with_torch:
      row.update(time_torch(layer, repeats))
    shape = f"{layer.batch}x{layer.height}x{layer.width}x{layer.in_channels}"
    print(f"  {layer.name:17s} {shape:>18s} {layer.out_channels:4d} {layer.gflop:6.2f}"
          + "".join("   " + " / ".join(f"{row[f'{p}_{k}']:6.1f}" for k in _TIMES)
                    for p in paths), flush=True)
    rows.append(row)
  print(f"  {'all layers':17s} {'':>18s} {'':>4s} {sum(r['gflop'] for r in rows):6.2f}"
        + "".join("   " + " / ".join(f"{sum(r[f'{p}_{k}'] for r in rows):6.1f}" for k in _TIMES)
                  for p in paths), flush=True)
  return rows
