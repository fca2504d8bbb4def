"""The three nets: a vision tower, an audio tower and one head, behind one output dict.

Inputs: image uint8 [B, S, S, 3] (normalised here, so the export needs no separate
preprocessing) and audio float32 [B, F, T, 1] (a log-magnitude spectrogram).
Output keys: logit, image_features, audio_features, and per head image_embedding,
audio_embedding (AVE, AVOL), loc_map and loc_logits (AVOL).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from avjax.models import heads as heads_lib
from avjax.models import towers

HEADS = {"l3": heads_lib.L3Head, "ave": heads_lib.AVEHead, "avol": heads_lib.AVOLHead}


def localises(head: str) -> bool:
  """Whether the head gives a map of where the sound is (it has `localise`: AVOL-Net)."""
  return hasattr(HEADS[head], "localise")
DTYPES = ("auto", "float32", "bfloat16")

# ImageNet-style statistics of uint8 RGB; fixed so an exported net needs nothing else.
IMAGE_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGE_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def normalise_image(image: jnp.ndarray) -> jnp.ndarray:
  return (image.astype(jnp.float32) - jnp.array(IMAGE_MEAN)) / jnp.array(IMAGE_STD)


class AVNet(nn.Module):
  """Two towers and one head.

  Attributes:
    head: "l3", "ave" or "avol".
    width: channel multiplier of both towers (1.0 = the papers' 64-128-256-512).
    vision_stride / audio_stride: stride of each tower's conv1_1.
    embed_dim: size of the joint embedding (AVE, AVOL).
    dtype: computation dtype of the towers.
  """
  head: str = "avol"
  width: float = 1.0
  vision_stride: int = 2
  audio_stride: int = 2
  embed_dim: int = 128
  dtype: Any = jnp.float32

  def setup(self):
    widths = towers.scaled_widths(self.width)
    self.vision_tower = towers.ConvTower(widths, self.vision_stride, self.dtype)
    self.audio_tower = towers.ConvTower(widths, self.audio_stride, self.dtype)
    self.head_module = HEADS[self.head](self.embed_dim)

  def __call__(self, image: jnp.ndarray, audio: jnp.ndarray, train: bool = False) -> dict:
    vision = self.vision_tower(normalise_image(image), train)
    sound = self.audio_tower(audio, train)
    out = dict(self.head_module(vision, sound))
    out["image_features"] = vision["pooled"].astype(jnp.float32)
    out["audio_features"] = sound["pooled"].astype(jnp.float32)
    return out

  def pairwise_logits(self, image: jnp.ndarray, audio: jnp.ndarray,
                      train: bool = False) -> jnp.ndarray:
    """Correspondence logits of every image against every sound: [B_image, B_audio]."""
    vision = self.vision_tower(normalise_image(image), train)
    return self.head_module.pairwise(vision, self.audio_tower(audio, train))

  def audio_probe_map(self, audio: jnp.ndarray) -> jnp.ndarray:
    """The audio tower's conv4_2 before its ReLU, [B, h, w, C] (L3's probe features)."""
    return self.audio_tower(audio, False)["pre_relu"].astype(jnp.float32)

  def image_probe_map(self, image: jnp.ndarray) -> jnp.ndarray:
    """The vision tower's conv4_2 before its ReLU, [B, h, w, C] (the image probe's features)."""
    return self.vision_tower(normalise_image(image), False)["pre_relu"].astype(jnp.float32)

  def embed_image(self, image: jnp.ndarray) -> jnp.ndarray:
    """The image's joint embedding (tower features for L3-Net, which has no joint space)."""
    return self.head_module.embed_image(self.vision_tower(normalise_image(image), False))

  def embed_audio(self, audio: jnp.ndarray) -> jnp.ndarray:
    """The sound's joint embedding (tower features for L3-Net)."""
    return self.head_module.embed_audio(self.audio_tower(audio, False))


def compute_dtype(name: str) -> Any:
  """The towers' computation dtype for config.model.dtype: "auto" is bfloat16 on GPU and TPU
  (their fast matmul type) and float32 on CPU, where bf16 convolutions gain nothing."""
  if name == "auto":
    return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
  return jnp.dtype(name)


def build_model(model_cfg: ml_collections.ConfigDict) -> AVNet:
  """The net named by config.model."""
  return AVNet(head=model_cfg.name, width=model_cfg.width,
               vision_stride=model_cfg.vision_stride, audio_stride=model_cfg.audio_stride,
               embed_dim=model_cfg.embed_dim, dtype=compute_dtype(model_cfg.dtype))
