"""The PyTorch baseline of the benchmark: avjax's nets and train step re-implemented in PyTorch.

  from benchmarks import torch_nets
  torch_nets.time_train_step(config, batch_size=8, steps=5)
  # {"clips_per_s": ..., "step_s": ..., "params": ...}

For an avjax config this builds the same net (config.model: head, width, first-conv strides,
embed_dim) on the same input shapes, with the same parameter count (checked against the Flax
model), and times the same training step: the loss of config.train.negatives ("pairs": each
row's logit against its label; "batch": every image against every sound of the batch,
positive and negative pairs weighted half each) and Adam with L2 weight decay added to the
gradient (optax.add_decayed_weights + scale_by_adam, which is torch.optim.Adam's
weight_decay). Tensors and modules use the channels-last memory format, PyTorch's fastest
layout for convolutions on the CPU, and eager execution with one thread per core.

Differences that do not change the work done: a stride-2 "SAME" convolution pads (0, 1) in
Flax and (1, 1) here (same output size); weights are PyTorch's default initialisation; the
learning rate is config.train.learning_rate, not the warm-up/decay schedule; the avjax step
also returns gradient, parameter and update norms (a few reductions over the parameters),
which this one does not compute.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time

import jax
import ml_collections
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from avjax.models import nets as avjax_nets
from avjax.models import towers
from avjax.train import state as state_lib


def cpu_cores() -> int:
  """The cores this process may run on."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def l2_normalise(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
  return x * torch.rsqrt(torch.sum(x * x, dim=-1, keepdim=True) + eps)


class ConvTower(nn.Module):
  """Four blocks of [conv3x3 (no bias) -> BatchNorm -> ReLU] x 2; 2x2 max-pool after the
  first three blocks. Returns (conv4_2 map [B, C, h, w], its global max [B, C])."""

  def __init__(self, in_channels: int, widths, first_stride: int):
    super().__init__()
    layers, channels = [], in_channels
    for block, width in enumerate(widths):
      for layer in range(2):
        stride = first_stride if (block, layer) == (0, 0) else 1
        layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False),
                   nn.BatchNorm2d(width, eps=1e-5, momentum=0.1),  # Flax momentum 0.9
                   nn.ReLU(inplace=True)]
        channels = width
      if block < len(widths) - 1:
        layers.append(nn.MaxPool2d(2, 2))
    self.layers = nn.Sequential(*layers)

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = self.layers(x)
    return x, torch.amax(x, dim=(2, 3))


class Embedder(nn.Module):
  """512 -> fc + ReLU -> fc -> L2-normalise."""

  def __init__(self, in_dim: int, dim: int):
    super().__init__()
    self.fc1, self.fc2 = nn.Linear(in_dim, dim), nn.Linear(dim, dim)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return l2_normalise(self.fc2(F.relu(self.fc1(x))))


class L3Head(nn.Module):
  """concat(vision, audio) -> fc128 + ReLU -> fc2; logit = l[corresponds] - l[not]."""

  def __init__(self, feat: int, dim: int):
    super().__init__()
    self.fc1, self.fc2 = nn.Linear(2 * feat, dim), nn.Linear(dim, 2)

  def forward(self, v_map, v, a_map, a) -> torch.Tensor:
    del v_map, a_map
    two_way = self.fc2(F.relu(self.fc1(torch.cat([v, a], dim=-1))))
    return two_way[..., 1] - two_way[..., 0]

  def pairwise(self, v_map, v, a_map, a) -> torch.Tensor:
    grid_v = v[:, None].expand(v.shape[0], a.shape[0], v.shape[-1])
    grid_a = a[None, :].expand(v.shape[0], a.shape[0], a.shape[-1])
    return self(None, grid_v, None, grid_a)


class AVEHead(nn.Module):
  """Per-tower unit embeddings; Euclidean distance -> fc 1->2."""

  def __init__(self, feat: int, dim: int):
    super().__init__()
    self.vision_embedder, self.audio_embedder = Embedder(feat, dim), Embedder(feat, dim)
    self.fc3 = nn.Linear(1, 2)
    with torch.no_grad():
      self.fc3.weight.copy_(torch.tensor([[1.0], [-1.0]]))
      self.fc3.bias.copy_(torch.tensor([-1.0, 1.0]))

  def logit(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    distance = torch.sqrt(torch.sum(torch.square(v - a), dim=-1, keepdim=True) + 1e-12)
    two_way = self.fc3(distance)
    return two_way[..., 1] - two_way[..., 0]

  def forward(self, v_map, v, a_map, a) -> torch.Tensor:
    del v_map, a_map
    return self.logit(self.vision_embedder(v), self.audio_embedder(a))

  def pairwise(self, v_map, v, a_map, a) -> torch.Tensor:
    del v_map, a_map
    return self.logit(self.vision_embedder(v)[:, None], self.audio_embedder(a)[None, :])


class AVOLHead(nn.Module):
  """Audio embedding . per-location vision vectors -> calibrated map -> max over locations."""

  def __init__(self, feat: int, dim: int):
    super().__init__()
    self.vision_conv1, self.vision_conv2 = nn.Conv2d(feat, dim, 1), nn.Conv2d(dim, dim, 1)
    self.audio_embedder = Embedder(feat, dim)
    self.calibration = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
      self.calibration.weight.fill_(1.0)
      self.calibration.bias.zero_()

  def _calibrate(self, scores: torch.Tensor) -> torch.Tensor:
    # A 1x1 conv from one channel to one is a scale and a bias.
    return scores * self.calibration.weight.reshape(()) + self.calibration.bias.reshape(())

  def _vectors(self, v_map: torch.Tensor) -> torch.Tensor:
    return self.vision_conv2(F.relu(self.vision_conv1(v_map)))  # [B, dim, h, w]

  def forward(self, v_map, v, a_map, a) -> torch.Tensor:
    del v, a_map
    scores = torch.einsum("bchw,bc->bhw", self._vectors(v_map), self.audio_embedder(a))
    return torch.amax(self._calibrate(scores), dim=(1, 2))

  def pairwise(self, v_map, v, a_map, a) -> torch.Tensor:
    del v, a_map
    scores = torch.einsum("ichw,jc->ijhw", self._vectors(v_map), self.audio_embedder(a))
    return torch.amax(self._calibrate(scores), dim=(2, 3))


HEADS = {"l3": L3Head, "ave": AVEHead, "avol": AVOLHead}


class AVNet(nn.Module):
  """Two towers and one head, as avjax.models.nets.AVNet; inputs in NCHW, channels-last."""

  def __init__(self, model_cfg: ml_collections.ConfigDict):
    super().__init__()
    widths = towers.scaled_widths(model_cfg.width)
    self.vision_tower = ConvTower(3, widths, model_cfg.vision_stride)
    self.audio_tower = ConvTower(1, widths, model_cfg.audio_stride)
    self.head = HEADS[model_cfg.name](widths[-1], model_cfg.embed_dim)
    self.register_buffer("mean", torch.tensor(avjax_nets.IMAGE_MEAN).reshape(1, 3, 1, 1))
    self.register_buffer("std", torch.tensor(avjax_nets.IMAGE_STD).reshape(1, 3, 1, 1))
    # Towers in bfloat16 when the config asks for it (the heads stay float32, as in avjax).
    self.tower_dtype = torch.bfloat16 if model_cfg.dtype == "bfloat16" else None

  def _towers(self, image: torch.Tensor, audio: torch.Tensor):
    autocast = (torch.autocast("cpu", dtype=self.tower_dtype) if self.tower_dtype
                else contextlib.nullcontext())
    with autocast:
      vision = self.vision_tower((image.float() - self.mean) / self.std)
      sound = self.audio_tower(audio)
    return [t.float() for t in (*vision, *sound)]

  def forward(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """Per-row correspondence logits [B]."""
    return self.head(*self._towers(image, audio))

  def pairwise_logits(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """Every image against every sound: [B_image, B_audio]."""
    return self.head.pairwise(*self._towers(image, audio))


def balanced_mean(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
  """Mean over positive pairs and mean over negative pairs, weighted half each."""
  pos = torch.sum(values * targets) / torch.clamp(torch.sum(targets), min=1.0)
  neg = torch.sum(values * (1 - targets)) / torch.clamp(torch.sum(1 - targets), min=1.0)
  return 0.5 * (pos + neg)


def loss_and_accuracy(model: AVNet, batch: dict, negatives: str):
  """The avjax train step's loss and accuracy (avjax.train.step.train_step)."""
  if negatives == "batch":
    logits = model.pairwise_logits(batch["image"], batch["audio"])
    same_frame = batch["frame"][:, None] == batch["frame"][None, :]
    targets = (same_frame & (batch["label"][None, :] > 0)).float()
    loss = balanced_mean(
        F.binary_cross_entropy_with_logits(logits, targets, reduction="none"), targets)
    accuracy = balanced_mean(((logits > 0).float() == targets).float(), targets)
  else:
    logit = model(batch["image"], batch["audio"])
    loss = F.binary_cross_entropy_with_logits(logit, batch["label"].float())
    accuracy = ((logit > 0) == (batch["label"] > 0)).float().mean()
  return loss, accuracy


def make_optimizer(model: nn.Module, train_cfg: ml_collections.ConfigDict):
  """Adam with L2 weight decay added to the gradient; the fused CPU kernel where available."""
  kwargs = dict(lr=train_cfg.learning_rate, weight_decay=train_cfg.weight_decay)
  try:
    return torch.optim.Adam(model.parameters(), fused=True, **kwargs)
  except (RuntimeError, TypeError):
    return torch.optim.Adam(model.parameters(), **kwargs)


def to_torch(batch: dict) -> dict:
  """avjax's NHWC numpy batch -> NCHW tensors in channels-last memory (the same bytes)."""
  out = {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}
  for key in ("image", "audio"):
    out[key] = out[key].permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
  return out


def synthetic_batch(config: ml_collections.ConfigDict, batch_size: int) -> dict:
  """A batch of the shapes benchmarks.step times: half positives, two rows per frame."""
  image, audio = state_lib.dummy_inputs(config.data, batch_size)
  rng = np.random.default_rng(0)
  return {"image": rng.integers(0, 255, image.shape, dtype=np.uint8),
          "audio": rng.normal(size=audio.shape).astype(np.float32),
          "label": (np.arange(batch_size) % 2 == 0).astype(np.int32),
          "frame": (np.arange(batch_size) // 2).astype(np.int32)}


def jax_param_count(config: ml_collections.ConfigDict) -> int:
  """Parameters of avjax's Flax model for this config (shapes only, nothing computed)."""
  model = avjax_nets.build_model(config.model)
  image, audio = state_lib.dummy_inputs(config.data)
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), image, audio))
  return state_lib.count_params(variables["params"])


def count_params(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())


def build(config: ml_collections.ConfigDict) -> AVNet:
  """The PyTorch net of `config`, channels-last, after checking its size against avjax's."""
  model = AVNet(config.model).to(memory_format=torch.channels_last)
  n_torch, n_jax = count_params(model), jax_param_count(config)
  if n_torch != n_jax:
    raise AssertionError(f"{config.experiment}: PyTorch net has {n_torch} parameters, "
                         f"avjax's {n_jax}")
  return model


def time_train_step(config: ml_collections.ConfigDict, batch_size: int, steps: int,
                    batch: dict | None = None) -> dict:
  """Median seconds of `steps` PyTorch train steps after one warm-up step.

  `batch` is a numpy batch in avjax's layout (image [B, S, S, 3] uint8, audio [B, F, T, 1],
  label, frame); a synthetic one of `batch_size` rows when None. Returns clips_per_s,
  step_s, params (equal to the avjax model's, checked) and the last step's loss.
  """
  torch.set_num_threads(cpu_cores())
  torch.set_flush_denormal(True)  # denormals as zero, as XLA computes on the CPU
  torch.manual_seed(config.seed)
  if batch is None:
    batch = synthetic_batch(config, batch_size)
  assert len(batch["image"]) == batch_size, (len(batch["image"]), batch_size)
  data = to_torch(batch)
  model = build(config).train()
  opt = make_optimizer(model, config.train)
  clip = config.train.grad_clip_norm

  def step():
    opt.zero_grad(set_to_none=True)
    loss, accuracy = loss_and_accuracy(model, data, config.train.negatives)
    loss.backward()
    if clip > 0:
      nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return float(loss.detach()), float(accuracy)

  step()  # warm-up: oneDNN primitives and optimiser state
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    loss, _ = step()
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times)
  return {"clips_per_s": batch_size / step_s, "step_s": step_s,
          "params": count_params(model), "loss": loss, "threads": torch.get_num_threads()}
