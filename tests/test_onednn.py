"""The oneDNN kernels' build and switch: a missing library or compiler is one line and XLA's
kernels take over (one warning), $AVJAX_CONV_KERNELS forces either path, and a forced oneDNN
that cannot load is one error line. Values on both paths: tests/test_conv.py."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import limits
from avjax.errors import ConfigError
from avjax.models import conv, onednn
from avjax.models.onednn import build


def test_build_errors_say_what_is_missing(tmp_path, monkeypatch):
  monkeypatch.setenv("AVJAX_ONEDNN_CACHE", str(tmp_path / "cache"))
  monkeypatch.setenv("AVJAX_ONEDNN_ROOT", str(tmp_path))
  with pytest.raises(build.BuildError, match="no oneDNN headers and library under"):
    build.library_path()
  monkeypatch.delenv("AVJAX_ONEDNN_ROOT")
  monkeypatch.setenv("CXX", "no-such-compiler")
  with pytest.raises(build.BuildError, match=r"no C\+\+ compiler \(no-such-compiler\)"):
    build.library_path()
  monkeypatch.setenv("CXX", "false")  # a "compiler" that fails
  with pytest.raises(build.BuildError, match="compiling conv3x3.cc failed"):
    build.library_path(verbose=False)
  assert not [p for p in os.listdir(tmp_path / "cache") if p.endswith(".so")]


def test_the_built_library_is_reused():
  first = build.library_path()
  assert os.path.basename(first).startswith("libavjax_onednn-") and os.path.exists(first)
  assert build.library_path() == first


@pytest.fixture
def unavailable(monkeypatch):
  """oneDNN's library cannot be loaded (as on a machine without the wheel or a compiler)."""
  def fail():
    raise build.BuildError("no oneDNN headers and library under /nowhere")
  monkeypatch.setattr(onednn, "_load", fail)
  onednn._loaded.cache_clear()
  onednn._warn_once.cache_clear()
  yield
  onednn._loaded.cache_clear()
  onednn._warn_once.cache_clear()


def test_unavailable_library_falls_back_to_xla_with_one_warning(unavailable, monkeypatch,
                                                                capsys):
  monkeypatch.delenv(onednn.ENV, raising=False)
  x = jnp.ones((1, 5, 5, 2))
  kernel = jnp.ones((3, 3, 2, 3))
  for _ in range(3):
    assert conv.choose_kernels(x, kernel) == "xla"
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1 and "XLA's CPU convolutions" in lines[0] and "/nowhere" in lines[0]
  text = jax.jit(conv.conv3x3).lower(x, kernel).as_text()
  assert "avjax_conv3x3" not in text and "stablehlo.convolution" in text


def test_forced_onednn_that_cannot_load_is_one_error_line(unavailable, monkeypatch):
  monkeypatch.setenv(onednn.ENV, "onednn")
  with pytest.raises(ConfigError, match="AVJAX_CONV_KERNELS=onednn, but oneDNN's kernels are "
                                        "unavailable: no oneDNN headers"):
    conv.choose_kernels(jnp.ones((1, 3, 3, 1)), jnp.ones((3, 3, 1, 1)))
  monkeypatch.setenv(onednn.ENV, "fast")
  with pytest.raises(ConfigError, match="AVJAX_CONV_KERNELS='fast'; use one of auto, onednn"):
    conv.choose_kernels(jnp.ones((1, 3, 3, 1)), jnp.ones((3, 3, 1, 1)))


def test_switch_forces_xla_where_onednn_is_available(monkeypatch, capsys):
  x, kernel = jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 2))
  monkeypatch.setenv(onednn.ENV, "xla")
  assert conv.choose_kernels(x, kernel) == "xla"
  monkeypatch.setenv(onednn.ENV, "onednn")
  assert conv.choose_kernels(x, kernel) == "onednn"
  assert capsys.readouterr().err == ""  # no warning when nothing is missing


_FALLBACK = """
import jax, jax.numpy as jnp, numpy as np
from avjax.models import towers
x = jnp.ones((2, 16, 16, 1))
tower = towers.ConvTower((4, 4, 8, 8), 1)
variables = tower.init(jax.random.PRNGKey(0), x, True)
out, _ = tower.apply(variables, x, True, mutable=["batch_stats"])
print("pooled", out["pooled"].shape)
"""


def test_a_machine_without_onednn_trains_on_xla(tmp_path):
  """A fresh process with no oneDNN to build against: the towers run, one warning line."""
  env = dict(os.environ, AVJAX_ONEDNN_ROOT=str(tmp_path), AVJAX_ONEDNN_CACHE=str(tmp_path))
  env.pop(onednn.ENV, None)
  proc = subprocess.run([sys.executable, "-c", _FALLBACK], env=env, capture_output=True,
                        text=True, timeout=limits.QUICK_HANG_S, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "pooled (2, 8)" in proc.stdout
  warnings = [line for line in proc.stderr.splitlines() if "oneDNN" in line]
  assert len(warnings) == 1 and "no oneDNN headers and library under" in warnings[0], proc.stderr
