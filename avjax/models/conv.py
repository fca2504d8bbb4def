"""The towers' two layer primitives, written for speed on XLA's CPU backend.

`Conv3x3` is `nn.Conv(features, (3, 3), padding="SAME", use_bias=False)` (same parameter name,
shape and initialiser, same outputs) whose kernel gradient is computed another way on large
maps. XLA computes a kernel gradient as a convolution whose contracted feature axis is the batch
(8 clips at paper size) and whose window is the whole map: on large maps with 64 or more
channels its CPU kernels run that 4-8x slower than the forward convolution. `kernel_grad`
instead folds the batch and the map's rows into the contracted features (8 x 112 = 896) and
slides a 1-D window along the columns, once per kernel row. Measured on a 2-core AVX-512 CPU
(kernel gradient alone, ms, XLA's / row-folded): batch 8 at 112x112x64 162 / 107, at 224x224x64
896 / 464, at 129x100x64 153 / 121, at 112x112x128 706 / 301; but batch 4 at 112x112x64
36 / 48, batch 8 at 112x112x16 4.5 / 7.3, batch 32 at 56x56x32 26 / 79. `prefers_row_folded`
encodes that: large maps (the first block at paper size, L3-Net's first two), wide layers,
batch of 8 or more. Only on the CPU backend: GPUs and TPUs keep their own kernels.

On the CPU backend all three convolutions of an f32 layer run instead on oneDNN's kernels
(`avjax.models.onednn`, the kernels PyTorch's CPU convolutions use) when its library builds and
loads; $AVJAX_CONV_KERNELS=xla keeps XLA's (the row-folded kernel gradient included).
`./run.sh bench --layers` times each layer's three convolutions on both.

`max_pool_2x2` is a 2x2/2 max-pool (VALID: an odd last row or column is dropped, as in
`nn.max_pool`) written as a reshape and a max: its gradient is an elementwise mask, where
`nn.max_pool`'s is XLA's select-and-scatter, which is slow on CPU.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from avjax.models import onednn

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def prefers_row_folded(batch: int, height: int, width: int, in_channels: int,
                       out_channels: int) -> bool:
  """Whether `kernel_grad` beats XLA's kernel gradient on the CPU (see the module docstring)."""
  return (height * width >= 8192 and min(in_channels, out_channels) >= 64 and batch >= 8
          and jax.default_backend() == "cpu")


def _xla_conv(x: jnp.ndarray, kernel: jnp.ndarray, stride: int) -> jnp.ndarray:
  return lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                  dimension_numbers=_DIMENSIONS)


def kernel_grad(x: jnp.ndarray, grad_out: jnp.ndarray) -> jnp.ndarray:
  """Gradient of a stride-1 SAME 3x3 convolution's kernel: [3, 3, C_in, C_out].

  dK[i, j, c, d] = sum over n, h, w of xpad[n, h + i, w + j, c] * grad_out[n, h, w, d]. For each
  kernel row i this is a 1-D convolution along w of the row-shifted input, laid out as
  [c (batch), w, (n, h) (features)], with the kernel grad_out laid out as [w, (n, h), d].
  """
  n, h, w, c = x.shape
  d = grad_out.shape[-1]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  window = grad_out.transpose(2, 0, 1, 3).reshape(w, n * h, d)
  rows = []
  for i in range(3):
    shifted = padded[:, i:i + h].transpose(3, 2, 0, 1).reshape(c, w + 2, n * h)
    rows.append(lax.conv_general_dilated(shifted, window, (1,), "VALID",
                                         dimension_numbers=("NWC", "WIO", "NWC")))  # [c, 3, d]
  return jnp.stack(rows).transpose(0, 2, 1, 3)


KERNELS = ("onednn", "xla")  # the values of conv3x3's `kernels`


def choose_kernels(x: jnp.ndarray, kernel: jnp.ndarray) -> str:
  """"onednn" for f32 on the CPU backend when its library is available (and not switched off
  by $AVJAX_CONV_KERNELS), else "xla"."""
  if x.dtype == jnp.float32 and kernel.dtype == jnp.float32 and onednn.enabled():
    return "onednn"
  return "xla"


def conv3x3(x: jnp.ndarray, kernel: jnp.ndarray, stride: int = 1,
            kernels: str | None = None) -> jnp.ndarray:
  """A SAME 3x3 convolution, NHWC x HWIO -> NHWC, on `kernels` (default: `choose_kernels`).

  The choice is a static argument of the traced function, so a program traced on one path is
  never reused for the other."""
  kernels = kernels or choose_kernels(x, kernel)
  if kernels not in KERNELS:
    raise ValueError(f"kernels={kernels!r}; use one of {KERNELS}")
  return _conv3x3(x, kernel, stride, kernels)


def _conv(x, kernel, stride, kernels):
  if kernels == "onednn":
    return onednn.forward(x, kernel, stride)
  return _xla_conv(x, kernel, stride)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv3x3(x, kernel, stride, kernels):
  return _conv(x, kernel, stride, kernels)


def _conv3x3_forward(x, kernel, stride, kernels):
  return _conv(x, kernel, stride, kernels), (x, kernel)


def _conv3x3_backward(stride, kernels, residuals, grad_out):
  x, kernel = residuals
  if kernels == "onednn":
    return (onednn.input_grad(grad_out, kernel, x.shape, stride),
            onednn.kernel_grad(x, grad_out, stride))
  _, pullback = jax.vjp(lambda x_, k_: _xla_conv(x_, k_, stride), x, kernel)
  grad_x, grad_kernel = pullback(grad_out)  # XLA drops whichever half is replaced below
  if stride == 1 and prefers_row_folded(*x.shape, grad_out.shape[-1]):
    grad_kernel = kernel_grad(x, grad_out).astype(kernel.dtype)
  return grad_x, grad_kernel


_conv3x3.defvjp(_conv3x3_forward, _conv3x3_backward)


class Conv3x3(nn.Module):
  """A bias-free SAME 3x3 convolution; parameters and outputs as `nn.Conv`'s."""
  features: int
  stride: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features), jnp.float32)
    return conv3x3(x.astype(self.dtype), kernel.astype(self.dtype), self.stride)


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """2x2 max-pool with stride 2 on [B, H, W, C] (VALID)."""
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
