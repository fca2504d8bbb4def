"""The benchmark's command line on a tiny net, with the PyTorch baseline off or not installed:
the JSON has every figure (positive) for each convolution path (oneDNN, XLA), no PyTorch keys,
a missing PyTorch is one note, and the FLOPs per clip do not depend on the path or on how many
devices share the step; the per-convolution profiler (--layers) times a layer's forward and
both gradients on each path."""

import json
import os
import subprocess
import sys

import pytest

from avjax import config as config_lib
from benchmarks import layers

# The benchmarks are not installed: they run from the repository root.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTE = "PyTorch not installed (pip install -e '.[torch]'): no baseline"
ROW_KEYS = ("train_clips_per_s", "train_step_s", "gflop_per_clip", "achieved_gflops", "mfu",
            "compile_s", "eval_clips_per_s", "peak_rss_mib", "pipeline_clips_per_s", "params",
            "vision_forward_ms", "vision_forward_backward_ms", "audio_forward_ms",
            "audio_forward_backward_ms")

HANG_S = 1500  # seconds: a hang, not a slow machine


def _bench(tmp_path, torch_flag: str, devices: int, *extra: str) -> tuple[str, list[dict]]:
  """(stdout, the JSON rows) of the bench on avol:tiny over `devices` CPU devices."""
  # A `torch` package that fails to import stands for an environment without PyTorch.
  hidden = tmp_path / "no_torch" / "torch"
  hidden.mkdir(parents=True, exist_ok=True)
  (hidden / "__init__.py").write_text("raise ImportError('PyTorch hidden by the test')\n")
  paths = [str(hidden.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths),
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  out = tmp_path / f"bench{devices}.json"
  # The limit only guards against a hang: a busy machine can take several times as long as an
  # idle one (300 s was too little on a loaded 2-core machine).
  proc = subprocess.run(
      [sys.executable, "-m", "benchmarks", "--experiments=avol", "--variants=tiny",
       "--steps=1", "--pipeline_batches=1", torch_flag, f"--json_out={out}", *extra],
      capture_output=True, text=True, check=False, env=env, timeout=HANG_S, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  with open(out) as f:
    result = json.load(f)
  assert result["matmul_peak_gflops"] > 0
  return proc.stdout, result["rows"]


def test_bench_runs_without_pytorch_on_one_and_two_devices(tmp_path, embedded_dir):
  rows = []
  # Both paths on one device; oneDNN alone on two (its FLOPs then come from an XLA compile).
  for torch_flag, devices, kernels in (("--torch=false", 1, "onednn,xla"),
                                       ("--torch=true", 2, "onednn")):
    stdout, found = _bench(tmp_path, torch_flag, devices, f"--kernels={kernels}")
    assert stdout.count(NOTE) == (1 if torch_flag == "--torch=true" else 0), stdout
    assert [row["kernels"] for row in found] == [k for k in ("xla", "onednn") if k in kernels]
    for row in found:
      assert row["experiment"] == "avol:tiny" and row["batch_size"] == 8
      assert row["devices"] == devices
      for key in ROW_KEYS:
        assert row[key] > 0, key
      assert 0 < row["data_wait_fraction"] < 1
      assert "torch_train_clips_per_s" not in row and "ratio_vs_torch" not in row
      assert "layers" not in row  # only with --layers
      assert f"avol:tiny   {row['kernels']:6s} batch   8: train" in stdout
    rows.extend(found)
  assert rows[0]["gflop_per_clip"] == rows[1]["gflop_per_clip"]  # one count for both paths
  # The towers' convolutions (--layers) are most of the step's forward FLOPs: fwd + 2x bwd.
  config = config_lib.get_config("avol:tiny")
  convs = layers.conv_layers(config, rows[0]["batch_size"])
  assert [c.name for c in convs[:2]] == ["vision conv1_1", "vision conv1_2"]
  assert len(convs) == 16 and convs[8].name == "audio conv1_1"
  conv_gflop_per_clip = sum(c.gflop for c in convs) / rows[0]["batch_size"]
  assert 0.2 < conv_gflop_per_clip / rows[0]["gflop_per_clip"] < 0.35
  # FLOPs per clip are the net's, whatever the number of devices the step is split over.
  assert rows[2]["gflop_per_clip"] == pytest.approx(rows[0]["gflop_per_clip"], rel=0.15)


def test_each_convolution_is_timed_forward_and_both_gradients():
  # In process, on the first and last layer: what --layers does for all 16 (each compiled
  # three times, so the whole profile is left to the benchmark itself).
  config = config_lib.get_config("avol:tiny")
  convs = layers.conv_layers(config, 8)
  for layer in (convs[0], convs[-1]):
    for kernels in ("onednn", "xla"):
      timed = layers.time_avjax(layer, repeats=1, kernels=kernels)
      assert min(timed["forward_ms"], timed["grad_input_ms"], timed["grad_kernel_ms"]) > 0
      assert not any(k.startswith("torch_") for k in timed)
