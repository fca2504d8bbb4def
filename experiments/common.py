"""Building blocks the experiments share: the papers' training settings and the laptop sizes.

Each experiment file composes these into its own variants; nothing here branches on a name.
"""

import ml_collections

from avjax.evaluate.config import default_eval_config, default_probe_config
from data_pipeline.config import default_data_config


def model_config(name: str, *, stride: int) -> ml_collections.ConfigDict:
  """The two towers (VGG-style, 8 conv layers each) and the net's head `name`."""
  return ml_collections.ConfigDict(dict(
      name=name, width=1.0, vision_stride=stride, audio_stride=stride, embed_dim=128,
      # The towers' computation dtype (params stay f32): "auto" = bf16 on GPU/TPU, f32 on
      # CPU; or "float32" / "bfloat16".
      dtype="auto"))


def paper_train_config() -> ml_collections.ConfigDict:
  """[OtS] training: Adam 1e-4, weight decay 1e-5, x0.94 every 16 epochs, one negative a frame."""
  return ml_collections.ConfigDict(dict(
      batch_size=256,             # global batch; per_device_batch_size > 0 overrides it
      per_device_batch_size=0,    # [OtS]: 128 per GPU on 16 GPUs
      num_steps=200_000,
      learning_rate=1e-4,
      warmup_steps=1000,
      weight_decay=1e-5,
      decay_rate=0.94,            # x0.94 ...
      decay_every_steps=16_000,   # ... every 16 epochs ([OtS])
      grad_clip_norm=0.0,         # 0 = no clipping
      # "pairs": the papers' loss, each frame with its own and another video's sound.
      # "batch": each frame against every sound of the batch (many more negatives per step).
      negatives="pairs",
      log_every_steps=50,
      checkpoint_every_steps=2000,
      keep_checkpoints=3,
  ))


def paper_config(experiment: str, model: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The whole paper-size config: `model`, the papers' data sizes, training and evaluation."""
  config = ml_collections.ConfigDict()
  config.experiment = experiment
  config.seed = 0
  config.model = model
  config.data = default_data_config()
  config.train = paper_train_config()
  config.eval = default_eval_config()
  config.eval.every_steps = 10_000
  config.probe = default_probe_config()
  return config


def laptop_demo(config: ml_collections.ConfigDict, experiment: str) -> ml_collections.ConfigDict:
  """`demo`: a quarter-width net on 112^2 frames and 16 kHz sound, 1000 steps of 32 on a CPU
  (about 10 min of training at the slower CPU's 56 clips/s, so that `./run.sh demo` fits in
  15 min there)."""
  config.experiment = experiment
  config.model.width = 0.25
  config.data.update(dict(
      sample_rate=16000, n_fft=256, win_length=160, hop_length=160, spec_frames=100,
      resize_size=128, image_size=112,
      decode_cache_mb=1500))  # the embedded clips decoded once per worker (~1.1 GB)
  config.train.update(dict(
      # In-batch negatives: with the papers' one negative per frame, this budget leaves the
      # nets near chance; every sound of the batch as a negative gets them learning.
      negatives="batch",
      batch_size=32, num_steps=1000, learning_rate=1e-3, warmup_steps=100,
      decay_every_steps=350, log_every_steps=25, checkpoint_every_steps=200))
  config.eval.every_steps = 500
  config.eval.batch_size = 64
  config.eval.avc.frames_per_clip = 10  # 38 test clips: 760 AVC pairs instead of 76
  return config


def smoke_test(config: ml_collections.ConfigDict, experiment: str) -> ml_collections.ConfigDict:
  """`tiny`: a 1/16-width net on 32^2 frames, 4 steps on 48 clips: for tests, in seconds."""
  config.experiment = experiment
  config.model.width = 1 / 16
  config.data.update(dict(
      sample_rate=8000, n_fft=128, win_length=80, hop_length=160, spec_frames=50,
      resize_size=40, image_size=32, max_clips=48, num_workers=0))
  config.train.update(dict(
      batch_size=8, num_steps=4, learning_rate=1e-3, warmup_steps=2,
      decay_every_steps=100, log_every_steps=1, checkpoint_every_steps=2))
  config.eval.every_steps = 1000
  config.eval.batch_size = 16
  return config
