"""Self-contained inference exports: write one from a training checkpoint, load it back.

An export folder holds only what inference needs:

  export.json   the full config, the preprocessing settings, the step and the avjax version
  params/       an Orbax checkpoint of {"params", "batch_stats"} (no optimiser state)

    python -m avjax.main --experiment=avol:demo --workdir=workdirs/avol_demo --mode=export

    model = avjax.load("workdirs/avol_demo/export")
    a = model.embed_audio(wave)           # waves [B, n] / [n] or spectrograms [B, F, T, 1]
    v = model.embed_image(frame)          # uint8 [B, H, W, 3] / [H, W, 3], any size
    m = model.localise(frame, wave)       # AVOL-Net only: [B, h, w] map in [0, 1]

Every problem with an export folder (missing, unfinished, corrupt, from an incompatible
avjax version) raises one `ExportError` whose message is a single line.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import avjax
from avjax.models import nets
from data_pipeline import media

EXPORT_JSON = "export.json"
PARAMS_DIR = "params"
FORMAT = "avjax-export"
# The data settings inference needs to turn media into network inputs.
PREPROCESSING_KEYS = ("sample_rate", "audio_seconds", "n_fft", "win_length", "hop_length",
                      "spec_frames", "log_eps", "resize_size", "image_size")


class ExportError(ValueError):
  """An export cannot be written, read or used as asked; the message is one line."""


def _major_minor(version: str) -> tuple[str, ...]:
  return tuple(str(version).split(".")[:2])


# Writing.


def write_export(config: ml_collections.ConfigDict, params: Any, batch_stats: Any, step: int,
                 export_dir: str) -> str:
  """Writes params and batch_stats (host arrays) and export.json to export_dir; returns it."""
  export_dir = os.path.abspath(export_dir)
  os.makedirs(export_dir, exist_ok=True)
  # export.json goes last: a folder without it is an unfinished export, never a stale one.
  for name in (EXPORT_JSON, PARAMS_DIR):
    path = os.path.join(export_dir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  tree = {"params": jax.device_get(params), "batch_stats": jax.device_get(batch_stats)}
  tree = jax.tree.map(np.asarray, tree)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(export_dir, PARAMS_DIR), tree)
  data = config.data
  meta = {
      "format": FORMAT,
      "avjax_version": avjax.__version__,
      "step": int(step),
      "experiment": config.get("experiment", ""),
      "head": config.model.name,
      "preprocessing": dict({k: data[k] for k in PREPROCESSING_KEYS},
                            image_mean=list(nets.IMAGE_MEAN), image_std=list(nets.IMAGE_STD)),
      "config": json.loads(config.to_json()),
  }
  tmp = os.path.join(export_dir, EXPORT_JSON + ".tmp")
  with open(tmp, "w") as f:
    json.dump(meta, f, indent=2)
  os.replace(tmp, os.path.join(export_dir, EXPORT_JSON))
  return export_dir


def export(config: ml_collections.ConfigDict, workdir: str, export_dir: str,
           step: Optional[int] = None) -> str:
  """Exports the checkpoint at `step` (default: the latest) of workdir to export_dir."""
  # Imported here so that loading an export never pulls in the trainer.
  from avjax import runtime  # pylint: disable=g-import-not-at-top
  from avjax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from avjax.models import build_model  # pylint: disable=g-import-not-at-top
  from avjax.train import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  from avjax.train import state as state_lib  # pylint: disable=g-import-not-at-top

  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    raise ExportError(f"no checkpoint in {os.path.join(os.path.abspath(workdir), 'checkpoints')}"
                      ": train first (--mode=train)")
  ckpt = checkpoint_lib.Checkpointer(workdir)
  try:
    template = state_lib.create_train_state(
        build_model(config.model), state_lib.make_optimizer(config.train), config,
        runtime.data_mesh())
    try:
      found, state = ckpt.restore_good(template, requested=step)
      if found is None:
        ckpt.step_to_restore()  # raises: no checkpoint, train first
    except ConfigError as err:
      raise ExportError(str(err)) from None
  finally:
    ckpt.close()
  return write_export(config, state.params, state.batch_stats, int(state.step), export_dir)


# Loading.


def _read_meta(export_dir: str) -> dict:
  if not os.path.isdir(export_dir):
    raise ExportError(f"no avjax export at {export_dir}: folder not found")
  path = os.path.join(export_dir, EXPORT_JSON)
  if not os.path.isfile(path):
    raise ExportError(f"{export_dir} is not a finished avjax export: {EXPORT_JSON} is missing")
  try:
    with open(path) as f:
      meta = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    raise ExportError(f"{path} is corrupt ({reason})") from None
  missing = [k for k in ("format", "avjax_version", "step", "preprocessing", "config")
             if not isinstance(meta, dict) or k not in meta]
  if missing or meta.get("format") != FORMAT:
    raise ExportError(f"{path} is corrupt (not an {FORMAT} file"
                      + (f"; missing {', '.join(missing)})" if missing else ")"))
  if _major_minor(meta["avjax_version"]) != _major_minor(avjax.__version__):
    raise ExportError(f"{export_dir} was exported by avjax {meta['avjax_version']}, which this "
                      f"avjax {avjax.__version__} cannot load: export it again with this version")
  return meta


def _restore_variables(export_dir: str, model: nets.AVNet, prep: dict) -> dict:
  """{"params", "batch_stats"} of the export, checked against the config's model."""
  path = os.path.join(export_dir, PARAMS_DIR)
  if not os.path.isdir(path):
    raise ExportError(f"{export_dir} is incomplete: its {PARAMS_DIR}/ folder is missing")
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      restored = checkpointer.restore(path)
  except Exception as err:  # pylint: disable=broad-except
    # Orbax and TensorStore raise many types for damaged files; all mean the same here.
    raise ExportError(f"{path} cannot be read ({media.failure_reason(err)})") from None
  size = prep["image_size"]
  image = jnp.zeros((1, size, size, 3), jnp.uint8)
  audio = jnp.zeros((1,) + media.spectrogram_shape(prep), jnp.float32)
  expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), image, audio))
  expected = {"params": expected["params"], "batch_stats": expected.get("batch_stats", {})}
  restored = dict(restored) if isinstance(restored, dict) else {}
  restored.setdefault("batch_stats", {})  # Orbax drops empty subtrees
  want = jax.tree_util.tree_flatten_with_path(expected)[0]
  got = jax.tree_util.tree_flatten_with_path(restored)[0]
  if ([(p, tuple(x.shape)) for p, x in want] != [(p, tuple(np.shape(x))) for p, x in got]):
    raise ExportError(f"{path} does not hold the parameters of the {model.head} net its "
                      f"{EXPORT_JSON} describes")
  return jax.tree.map(lambda e, x: jnp.asarray(x, e.dtype), expected, restored)


def _frame_outputs(module: nets.AVNet, image, audio):
  """(image embedding, map in [0, 1] or None) for frames and their audio windows."""
  vision = module.vision_tower(nets.normalise_image(image), False)
  embedding = module.head_module.embed_image(vision)
  if not nets.localises(module.head):
    return embedding, None
  sound = module.audio_tower(audio, False)
  scores = module.head_module.localise(module.head_module.vision_vectors(vision),
                                       module.head_module.embed_audio(sound))
  return embedding, jax.nn.sigmoid(scores)


class Exported:
  """A loaded export: jitted embedding functions plus the preprocessing they expect.

  Attributes:
    export_dir: the folder it was loaded from.
    config: the training config (ml_collections.ConfigDict).
    preprocessing: sample_rate, audio_seconds, n_fft, ..., image_size, image_mean/std.
    step: the training step of the exported parameters.
    head: "l3", "ave" or "avol".
  """

  def __init__(self, export_dir: str):
    self.export_dir = os.path.abspath(export_dir)
    meta = _read_meta(self.export_dir)
    try:
      self.config = ml_collections.ConfigDict(meta["config"])
      self.preprocessing = dict(meta["preprocessing"])
      self.step = int(meta["step"])
      self.version = meta["avjax_version"]
      self.model = nets.build_model(self.config.model)
      missing = [k for k in PREPROCESSING_KEYS if k not in self.preprocessing]
      if missing:
        raise KeyError(f"preprocessing.{missing[0]}")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
      raise ExportError(f"{os.path.join(self.export_dir, EXPORT_JSON)} is corrupt "
                        f"(bad or missing field: {err})") from None
    if self.model.head not in nets.HEADS:
      raise ExportError(f"{self.export_dir}: unknown net '{self.model.head}' in {EXPORT_JSON}")
    self.head = self.model.head
    self.variables = _restore_variables(self.export_dir, self.model, self.preprocessing)
    model = self.model
    self._embed_image = jax.jit(lambda v, x: model.apply(v, x, method=nets.AVNet.embed_image))
    self._embed_audio = jax.jit(lambda v, x: model.apply(v, x, method=nets.AVNet.embed_audio))
    self._frames = jax.jit(lambda v, x, a: model.apply(v, x, a, method=_frame_outputs))

  def __repr__(self):
    return (f"Exported({self.export_dir!r}, head={self.head!r}, step={self.step}, "
            f"image_size={self.preprocessing['image_size']}, "
            f"sample_rate={self.preprocessing['sample_rate']})")

  # Preprocessing (numpy, the training pipeline's own functions).

  def spectrogram(self, wave: np.ndarray) -> np.ndarray:
    """Log-spectrogram float32 [F, T, 1] of a mono wave at sample_rate (audio_seconds long)."""
    from data_pipeline import features  # pylint: disable=g-import-not-at-top
    p = self.preprocessing
    return features.log_spectrogram(wave, n_fft=p["n_fft"], win_length=p["win_length"],
                                    hop_length=p["hop_length"], spec_frames=p["spec_frames"],
                                    log_eps=p["log_eps"])

  def preprocess_image(self, frame: np.ndarray) -> np.ndarray:
    """uint8 [S, S, 3] network image of an RGB frame [H, W, 3]: the whole frame resized."""
    from data_pipeline import features  # pylint: disable=g-import-not-at-top
    p = self.preprocessing
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3:
      raise ValueError(f"expected an RGB frame [H, W, 3], got shape {frame.shape}")
    geo = features.sample_geometry(None, p["resize_size"], p["image_size"], False)
    return features.network_image(frame.astype(np.uint8), geo)

  def images(self, images) -> np.ndarray:
    """A uint8 batch [B, S, S, 3] from one frame or a batch of any size."""
    images = np.asarray(images)
    if images.ndim == 3:
      images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected RGB images [B, H, W, 3] or [H, W, 3], got {images.shape}")
    if images.dtype != np.uint8:
      raise ValueError(f"expected uint8 RGB images, got {images.dtype}")
    size = self.preprocessing["image_size"]
    if images.shape[1:3] != (size, size):
      images = np.stack([self.preprocess_image(x) for x in images])
    return images

  def spectrograms(self, audio) -> np.ndarray:
    """A float32 batch [B, F, T, 1] from waves ([n] or [B, n]) or spectrograms."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim in (1, 2):
      waves = audio[None] if audio.ndim == 1 else audio
      return np.stack([self.spectrogram(w) for w in waves])
    if audio.ndim == 3:
      audio = audio[None]
    want = media.spectrogram_shape(self.preprocessing)
    if audio.ndim != 4 or audio.shape[1:] != want:
      raise ValueError(f"expected waves [B, n] or spectrograms [B, {want[0]}, {want[1]}, 1], "
                       f"got shape {audio.shape}")
    return audio

  # The net.

  def embed_image(self, images) -> np.ndarray:
    """Image embeddings [B, D] (L3-Net: the vision tower's pooled features)."""
    return np.asarray(self._embed_image(self.variables, self.images(images)))

  def embed_audio(self, waves_or_specs) -> np.ndarray:
    """Audio embeddings [B, D] of waves or log-spectrograms (L3-Net: the audio tower's)."""
    return np.asarray(self._embed_audio(self.variables, self.spectrograms(waves_or_specs)))

  def localise(self, image, audio) -> np.ndarray:
    """AVOL-Net's map [B, h, w] in [0, 1] of where in each image its sound comes from."""
    if not nets.localises(self.head):
      raise ExportError(f"localise needs an AVOL-Net export; {self.export_dir} holds a "
                        f"{self.head} net")
    images, specs = self.images(image), self.spectrograms(audio)
    if len(specs) == 1 < len(images):  # one sound for several images
      specs = np.repeat(specs, len(images), axis=0)
    if len(images) != len(specs):
      raise ValueError(f"{len(images)} images but {len(specs)} audio windows")
    return np.asarray(self._frames(self.variables, images, specs)[1])

  def frame_outputs(self, images: np.ndarray, specs: np.ndarray):
    """(embeddings, maps or None) as device arrays, for prepared batches (no host sync)."""
    return self._frames(self.variables, images, specs)

  def audio_outputs(self, specs: np.ndarray):
    """Audio embeddings as a device array, for a prepared batch (no host sync)."""
    return self._embed_audio(self.variables, specs)

  def image_outputs(self, images: np.ndarray):
    """Image embeddings as a device array, for a prepared batch (no host sync)."""
    return self._embed_image(self.variables, images)


def load(export_dir: str) -> Exported:
  """The export in export_dir, ready to embed; raises ExportError if it cannot be used."""
  return Exported(export_dir)
