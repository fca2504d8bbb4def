"""Inference exports: what the export computes is what the trained net computes, the export
holds no optimiser state, and every broken export fails with one clear ExportError."""

import fcntl
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

import avjax
from avjax import config as config_lib
from avjax import export as export_lib
from avjax.models import build_model
from avjax.train import checkpoint as checkpoint_lib
from avjax.train import loop
from avjax.train import state as state_lib
import limits


def shared_export(tmp_path_factory, worker_id: str):
  """(config, workdir, export_dir): avol:tiny trained 2 steps, then exported.

  Done once per test run: the pytest-xdist workers (and test_embed.py) share it through a
  folder of the run's temporary root, under a file lock.
  """
  root = tmp_path_factory.getbasetemp()
  root = root if worker_id == "master" else root.parent
  config = config_lib.get_config("avol:tiny", ["train.num_steps=2", "eval.every_steps=0"])
  workdir, export_dir = str(root / "avol_tiny" / "workdir"), str(root / "avol_tiny" / "export")
  with open(root / "avol_tiny.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.exists(os.path.join(export_dir, "export.json")):
      loop.train_and_evaluate(config, workdir)
      export_lib.export(config, workdir, export_dir)
  return config, workdir, export_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory, worker_id, embedded_dir):
  del embedded_dir  # built before training
  return shared_export(tmp_path_factory, worker_id)


def _inputs(seed=0, n=4):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  waves = (0.3 * rng.standard_normal((n, 8000))).astype(np.float32)
  return images, waves


def test_export_computes_what_the_trained_net_computes(trained):
  config, workdir, export_dir = trained
  s = loop.setup(config)
  ckpt = checkpoint_lib.Checkpointer(workdir)
  state = ckpt.restore(2, s.state)
  ckpt.close()
  model = avjax.load(export_dir)
  assert model.head == "avol" and model.step == 2
  images, waves = _inputs()
  specs = model.spectrograms(waves)
  out = jax.tree.map(np.asarray, s.infer(state, images, specs))  # the training code path
  np.testing.assert_allclose(model.embed_image(images), out["image_embedding"], atol=1e-5)
  np.testing.assert_allclose(model.embed_audio(specs), out["audio_embedding"], atol=1e-5)
  np.testing.assert_allclose(model.localise(images, specs), out["loc_map"], atol=1e-5)
  # Waves and single examples go through the same preprocessing as the training pipeline.
  np.testing.assert_allclose(model.embed_audio(waves), out["audio_embedding"], atol=1e-5)
  np.testing.assert_allclose(model.embed_image(images[0]), out["image_embedding"][:1],
                             atol=1e-5)
  frame = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
  np.testing.assert_allclose(model.embed_image(frame),
                             model.embed_image(model.preprocess_image(frame)), atol=1e-6)
  # The parameters are the checkpoint's, bit for bit; no optimiser state came along.
  assert set(model.variables) == {"params", "batch_stats"}
  for a, b in zip(jax.tree.leaves(model.variables["params"]), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_export_json_describes_the_export(trained):
  config, _, export_dir = trained
  with open(os.path.join(export_dir, "export.json")) as f:
    meta = json.load(f)
  assert meta["avjax_version"] == avjax.__version__ == "0.1.0"
  assert meta["step"] == 2 and meta["head"] == "avol"
  assert meta["config"] == json.loads(config.to_json())
  prep = meta["preprocessing"]
  for key in ("sample_rate", "n_fft", "win_length", "hop_length", "spec_frames", "log_eps",
              "audio_seconds", "image_size", "resize_size"):
    assert prep[key] == config.data[key], key
  assert len(prep["image_mean"]) == len(prep["image_std"]) == 3
  assert sorted(os.listdir(export_dir)) == ["export.json", "params"]


def _copy(export_dir, tmp_path, name="copy"):
  return shutil.copytree(export_dir, str(tmp_path / name))


def _edit_json(export_dir, **fields):
  path = os.path.join(export_dir, "export.json")
  with open(path) as f:
    meta = json.load(f)
  meta.update(fields)
  with open(path, "w") as f:
    json.dump(meta, f)


def _assert_fails(export_dir, match):
  with pytest.raises(export_lib.ExportError, match=match) as info:
    avjax.load(export_dir)
  assert "\n" not in str(info.value)
  assert isinstance(info.value, ValueError)


def test_broken_exports_fail_with_one_clear_error(trained, tmp_path):
  _, _, export_dir = trained
  _assert_fails(str(tmp_path / "nowhere"), "folder not found")

  truncated = _copy(export_dir, tmp_path, "truncated")
  path = os.path.join(truncated, "export.json")
  with open(path) as f:
    text = f.read()
  with open(path, "w") as f:
    f.write(text[:len(text) // 2])
  _assert_fails(truncated, "export.json is corrupt")
  with open(path, "wb") as f:
    f.write(b"\x00\xff\xfe garbage")
  _assert_fails(truncated, "export.json is corrupt")
  with open(path, "w") as f:
    f.write("[1, 2]")
  _assert_fails(truncated, "export.json is corrupt")
  os.remove(path)
  _assert_fails(truncated, "export.json is missing")

  no_params = _copy(export_dir, tmp_path, "no_params")
  shutil.rmtree(os.path.join(no_params, "params"))
  _assert_fails(no_params, "params/ folder is missing")

  garbled = _copy(export_dir, tmp_path, "garbled")
  for root, _, files in os.walk(os.path.join(garbled, "params")):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"not a checkpoint")
  _assert_fails(garbled, "cannot be read")

  newer = _copy(export_dir, tmp_path, "newer")
  _edit_json(newer, avjax_version="0.2.0")
  _assert_fails(newer, "exported by avjax 0.2.0")
  _edit_json(newer, avjax_version="0.1.9")  # patch releases stay compatible
  assert avjax.load(newer).step == 2

  # A config that does not describe the saved parameters.
  other = _copy(export_dir, tmp_path, "other")
  with open(os.path.join(other, "export.json")) as f:
    meta = json.load(f)
  meta["config"]["model"]["embed_dim"] = 64
  _edit_json(other, config=meta["config"])
  _assert_fails(other, "does not hold the parameters")


def test_localise_needs_an_avol_export(tmp_path):
  # An untrained l3:tiny export is enough to check the head, and costs no training.
  config = config_lib.get_config("l3:tiny")
  images, waves = _inputs(n=2)
  shapes = jax.eval_shape(build_model(config.model).init, jax.random.PRNGKey(0),
                          *state_lib.dummy_inputs(config.data))
  variables = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), shapes)
  export_dir = export_lib.write_export(config, variables["params"], variables["batch_stats"], 0,
                                       str(tmp_path / "l3"))
  l3 = avjax.load(export_dir)
  assert l3.head == "l3"
  with pytest.raises(avjax.ExportError, match="needs an AVOL-Net export"):
    l3.localise(images, waves)


def _main(*args):
  return subprocess.run([sys.executable, "-m", "avjax.main", "--experiment=avol:tiny", *args],
                        capture_output=True, text=True, timeout=limits.HANG_S, check=False)


def test_command_line_export(trained, tmp_path):
  _, workdir, export_dir = trained
  proc = _main(f"--workdir={workdir}", "--mode=export", f"--export_dir={tmp_path / 'cli'}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "Exported to" in proc.stdout
  _, waves = _inputs()
  np.testing.assert_array_equal(avjax.load(str(tmp_path / "cli")).embed_audio(waves),
                                avjax.load(export_dir).embed_audio(waves))
  # No checkpoint: one line, no traceback.
  proc = _main(f"--workdir={tmp_path / 'empty'}", "--mode=export")
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith("avjax: no checkpoint in")
  assert "Traceback" not in proc.stderr
  assert not os.path.exists(tmp_path / "empty")
