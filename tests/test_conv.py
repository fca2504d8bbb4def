"""The towers' conv and pool primitives compute what Flax's nn.Conv and nn.max_pool compute,
values and gradients, on one device and sharded over several."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import limits
from avjax.models import conv, onednn


def _reference_conv(x, kernel, stride):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _inputs(shape, features, seed=0):
  kx, kk = jax.random.split(jax.random.PRNGKey(seed))
  x = jax.random.normal(kx, shape)
  kernel = jax.random.normal(kk, (3, 3, shape[-1], features)) * 0.1
  return x, kernel


@pytest.mark.parametrize("shape, features", [((2, 9, 7, 3), 5), ((3, 16, 12, 4), 6),
                                             ((1, 1, 1, 2), 3)])
def test_kernel_grad_equals_xla_kernel_gradient(shape, features):
  x, kernel = _inputs(shape, features)
  grad_out = jax.random.normal(jax.random.PRNGKey(2), (*shape[:3], features))
  _, pullback = jax.vjp(lambda k: _reference_conv(x, k, 1), kernel)
  expected = pullback(grad_out)[0]
  got = jax.jit(conv.kernel_grad)(x, grad_out)
  assert got.shape == (3, 3, shape[-1], features)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# Odd maps, 1 and 3 input channels, batch 1; the towers' first layers have stride 2.
_SHAPES = [((2, 11, 8, 3), 4), ((1, 7, 9, 1), 3), ((3, 5, 6, 4), 6), ((1, 1, 1, 2), 3)]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape, features", _SHAPES)
@pytest.mark.parametrize("kernels, row_folded", [("onednn", None), ("xla", True),
                                                 ("xla", False)])
def test_conv3x3_values_and_gradients_match_xla(stride, shape, features, kernels, row_folded,
                                                monkeypatch):
  if row_folded is not None:
    monkeypatch.setattr(conv, "prefers_row_folded", lambda *shape: row_folded)
  x, kernel = _inputs(shape, features)
  np.testing.assert_allclose(conv.conv3x3(x, kernel, stride, kernels),
                             _reference_conv(x, kernel, stride), rtol=1e-5, atol=1e-5)

  def loss(fn, *extra):
    return lambda x_, k_: jnp.sum(jnp.sin(fn(x_, k_, stride, *extra)))
  grad = jax.jit(jax.grad(loss(conv.conv3x3, kernels), argnums=(0, 1)))
  text = grad.lower(x, kernel).as_text()
  # the path asked for is the path compiled: three custom calls, or XLA's convolutions only
  assert text.count("avjax_conv3x3_") == (3 if kernels == "onednn" else 0)
  got = grad(x, kernel)
  expected = jax.grad(loss(_reference_conv), argnums=(0, 1))(x, kernel)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_conv3x3_runs_on_onednn_on_the_cpu_by_default():
  """This machine builds the library (./run.sh does), so f32 takes oneDNN and bf16 XLA."""
  x, kernel = _inputs((1, 6, 6, 2), 3)
  assert conv.choose_kernels(x, kernel) == "onednn"
  assert conv.choose_kernels(x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16)) == "xla"
  assert "avjax_conv3x3_forward" in jax.jit(conv.conv3x3).lower(x, kernel).as_text()
  assert onednn.version().startswith("3.")


def test_row_folded_gradient_is_chosen_where_it_is_faster(monkeypatch):
  """Large wide maps at batch 8 or more take the row-folded gradient (the compiled gradient has
  its three 1-D convolutions); small maps, few channels, small batches and GPUs keep XLA's."""
  def convolutions(batch, hw, channels):
    x = jax.ShapeDtypeStruct((batch, *hw, channels), jnp.float32)
    kernel = jax.ShapeDtypeStruct((3, 3, channels, channels), jnp.float32)
    grad = jax.jit(jax.grad(lambda k, x_: jnp.sum(conv.conv3x3(x_, k, 1, "xla") ** 2)))
    return grad.lower(kernel, x).as_text().count("stablehlo.convolution")
  assert convolutions(8, (112, 112), 64) == 1 + 3  # the forward, then one per kernel row
  assert convolutions(8, (257, 200), 64) == 1 + 3
  assert convolutions(8, (56, 56), 128) == 1 + 1
  assert convolutions(8, (112, 112), 16) == 1 + 1
  assert convolutions(4, (112, 112), 64) == 1 + 1
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert convolutions(8, (112, 112), 64) == 1 + 1


def test_conv3x3_module_is_nn_conv():
  """Same parameter tree and initial values as nn.Conv, so checkpoints and seeds carry over."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 10, 10, 3))
  ours = conv.Conv3x3(8, stride=2)
  flax_conv = nn.Conv(8, (3, 3), strides=(2, 2), padding="SAME", use_bias=False)
  v_ours, v_flax = ours.init(jax.random.PRNGKey(1), x), flax_conv.init(jax.random.PRNGKey(1), x)
  assert jax.tree_util.tree_structure(v_ours) == jax.tree_util.tree_structure(v_flax)
  np.testing.assert_array_equal(v_ours["params"]["kernel"], v_flax["params"]["kernel"])
  np.testing.assert_allclose(ours.apply(v_ours, x), flax_conv.apply(v_flax, x),
                             rtol=1e-5, atol=1e-5)


def test_conv3x3_module_computes_in_its_dtype_with_float32_parameters():
  x = jnp.ones((1, 6, 6, 2))
  module = conv.Conv3x3(4, dtype=jnp.bfloat16)
  variables = module.init(jax.random.PRNGKey(0), x)
  assert variables["params"]["kernel"].dtype == jnp.float32
  assert module.apply(variables, x).dtype == jnp.bfloat16
  grads = jax.grad(lambda p: jnp.sum(module.apply({"params": p}, x).astype(jnp.float32)))(
      variables["params"])
  assert grads["kernel"].dtype == jnp.float32


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (1, 7, 9, 2), (1, 1, 5, 1)])
def test_max_pool_2x2_matches_nn_max_pool(shape):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)

  def flax_pool(y):
    return nn.max_pool(y, (2, 2), strides=(2, 2), padding="VALID")
  np.testing.assert_array_equal(conv.max_pool_2x2(x), flax_pool(x))
  # no ties in random data: both send each window's gradient to its maximum
  weights = jax.random.normal(jax.random.PRNGKey(1), flax_pool(x).shape)
  np.testing.assert_allclose(jax.grad(lambda y: jnp.sum(conv.max_pool_2x2(y) * weights))(x),
                             jax.grad(lambda y: jnp.sum(flax_pool(y) * weights))(x))


_SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from avjax.models import conv
conv.prefers_row_folded = lambda *shape: True
x = jax.random.normal(jax.random.PRNGKey(0), (8, 12, 10, 3))
k = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 5)) * 0.1
mesh = Mesh(np.array(jax.devices()), ("data",))
xs = jax.device_put(x, NamedSharding(mesh, P("data")))
ks = jax.device_put(k, NamedSharding(mesh, P()))
assert jax.device_count() == 4
for kernels in ("onednn", "xla"):
  for stride in (1, 2):
    grad = jax.jit(jax.grad(lambda x_, k_: jnp.sum(jnp.sin(conv.conv3x3(x_, k_, stride, kernels))),
                            argnums=(0, 1)))
    one = grad(x, k)
    sharded = grad(xs, ks)
    for a, b in zip(one, sharded):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert sharded[0].sharding.spec == P("data")
    if kernels == "onednn":
      calls = [line for line in grad.lower(xs, ks).compile().as_text().splitlines()
               if 'custom_call_target="avjax_conv3x3_' in line]
      # each device convolves its own 2 clips: no call sees the whole batch of 8
      assert len(calls) == 3 and all("f32[2,12,10,3]" in line for line in calls), calls
print("ok")
"""


def test_convolutions_under_batch_sharding():
  """With the batch split over devices, oneDNN's calls run per shard (the kernel gradient
  summed over them) and XLA's row-folded gradient sums the devices' parts: both give the
  one-device gradients."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
  proc = subprocess.run([sys.executable, "-c", _SHARDED], env=env, capture_output=True,
                        text=True, timeout=limits.HANG_S, check=False)
  assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize("spec", ["l3:paper", "avol:paper", "avol:demo"])
def test_benchmark_layer_list_follows_the_towers(spec):
  """The benchmark's per-layer shapes end where the real towers' maps end."""
  from avjax import config as config_lib
  from data_pipeline import media
  from avjax.models import towers
  from benchmarks import layers as bench_layers
  config = config_lib.get_config(spec)
  layers = bench_layers.conv_layers(config, batch=2)
  data, model = config.data, config.model
  for side, shape, stride in (
      ("vision", (2, data.image_size, data.image_size, 3), model.vision_stride),
      ("audio", (2,) + media.spectrogram_shape(data), model.audio_stride)):
    mine = [layer for layer in layers if layer.name.startswith(side)]
    assert len(mine) == 8 and mine[0].stride == stride
    tower = towers.ConvTower(towers.scaled_widths(model.width), stride)
    out = jax.eval_shape(lambda x, t=tower: t.init_with_output(jax.random.PRNGKey(0), x,
                                                               False)[0],
                         jnp.zeros(shape))
    last = mine[-1]
    assert out["map"].shape == (2, last.height, last.width, last.out_channels)
