"""The benchmark's command line on a tiny net, with the PyTorch baseline off or not installed:
the JSON has every figure (positive), no PyTorch keys, and a missing PyTorch is one note."""

import json
import os
import subprocess
import sys

import pytest

NOTE = "PyTorch not installed (pip install -e '.[torch]'): no baseline"
ROW_KEYS = ("train_clips_per_s", "train_step_s", "gflop_per_clip", "achieved_gflops", "mfu",
            "compile_s", "eval_clips_per_s", "peak_rss_mib", "pipeline_clips_per_s", "params")


@pytest.mark.parametrize("torch_flag", ["--torch=false", "--torch=true"])
def test_bench_runs_without_pytorch(torch_flag, tmp_path, embedded_dir):
  # A `torch` package that fails to import stands for an environment without PyTorch.
  hidden = tmp_path / "no_torch" / "torch"
  hidden.mkdir(parents=True)
  (hidden / "__init__.py").write_text("raise ImportError('PyTorch hidden by the test')\n")
  paths = [str(hidden.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
  out = tmp_path / "bench.json"
  proc = subprocess.run(
      [sys.executable, "-m", "avjax.bench", "--experiments=avol", "--variants=tiny",
       "--steps=1", "--pipeline_batches=1", torch_flag, f"--json_out={out}"],
      capture_output=True, text=True, check=False, env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.count(NOTE) == (1 if torch_flag == "--torch=true" else 0), proc.stdout
  with open(out) as f:
    result = json.load(f)
  assert result["matmul_peak_gflops"] > 0
  [row] = result["rows"]
  assert row["experiment"] == "avol:tiny" and row["batch_size"] == 8
  for key in ROW_KEYS:
    assert row[key] > 0, key
  assert 0 < row["data_wait_fraction"] < 1
  assert "torch_train_clips_per_s" not in row and "ratio_vs_torch" not in row
