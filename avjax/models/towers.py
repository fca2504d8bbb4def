"""The conv tower shared by the vision and audio sides of L3-Net, AVE-Net and AVOL-Net.

Four blocks of [conv3x3 -> BatchNorm -> ReLU] x 2; 2x2 max-pool after the first three blocks;
the fourth block's output (conv4_2) is kept as a map and global max-pooled (pool4) to one vector;
conv4_2 before its ReLU is kept too, for L3's linear probe.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from avjax.models import conv

PAPER_WIDTHS = (64, 128, 256, 512)


def scaled_widths(width: float, base: Sequence[int] = PAPER_WIDTHS) -> tuple[int, ...]:
  """Channel counts of the four blocks for a width multiplier (at least 4 channels each)."""
  return tuple(max(4, int(round(c * width))) for c in base)


class ConvTower(nn.Module):
  """A VGG-style tower on an image or a 1-channel spectrogram.

  Attributes:
    widths: channels of the four blocks.
    first_stride: stride of conv1_1 (1 in L3-Net, 2 in Objects that Sound).
    dtype: computation dtype (parameters stay float32).
  """
  widths: Sequence[int] = PAPER_WIDTHS
  first_stride: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> dict[str, jnp.ndarray]:
    """Maps [B, H, W, C] to {"map": conv4_2 [B, h, w, widths[-1]], "pooled": [B, widths[-1]],
    "pre_relu": conv4_2 before its ReLU (after its BatchNorm), L3's probe features}."""
    x = x.astype(self.dtype)
    for block, channels in enumerate(self.widths):
      for layer in range(2):
        stride = self.first_stride if (block, layer) == (0, 0) else 1
        x = conv.Conv3x3(channels, stride, self.dtype, name=f"conv{block + 1}_{layer + 1}")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype,
                         name=f"bn{block + 1}_{layer + 1}")(x)
        pre_relu = x
        x = nn.relu(x)
      if block < len(self.widths) - 1:
        x = conv.max_pool_2x2(x)
    return {"map": x, "pooled": jnp.max(x, axis=(1, 2)), "pre_relu": pre_relu}
