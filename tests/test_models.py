"""Shapes, parameter counts and head behaviour of the towers, heads and nets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avjax.models import heads, towers
from avjax import config as config_lib
from avjax.models import nets
from avjax.models.nets import AVNet
from avjax.train.state import count_params


def _shapes(module, *args, **kwargs):
  variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *args, **kwargs))
  out = jax.eval_shape(lambda: module.apply(module.init(jax.random.PRNGKey(0), *args, **kwargs),
                                            *args, **kwargs))
  return variables, out


@pytest.mark.parametrize("stride, image_hw, audio_hw, vision_map, audio_map", [
    (1, (224, 224), (257, 199), (28, 28), (32, 24)),   # L3-Net
    (2, (224, 224), (257, 200), (14, 14), (16, 12)),   # Objects that Sound
])
def test_tower_maps_match_the_papers(stride, image_hw, audio_hw, vision_map, audio_map):
  tower = towers.ConvTower(first_stride=stride)
  variables, out = _shapes(tower, jnp.zeros((2, *image_hw, 3)), train=False)
  assert out["map"].shape == (2, *vision_map, 512)
  assert out["pooled"].shape == (2, 512)
  _, out = _shapes(tower, jnp.zeros((2, *audio_hw, 1)), train=False)
  assert out["map"].shape == (2, *audio_map, 512)
  n = count_params(variables["params"])
  print(f"tower params (stride {stride}, image): {n:,}")
  assert 4.6e6 < n < 4.8e6  # "about 4.7 M parameters per tower"


def test_width_multiplier_scales_channels():
  assert towers.scaled_widths(0.25) == (16, 32, 64, 128)
  _, out = _shapes(towers.ConvTower(widths=towers.scaled_widths(0.25)),
                   jnp.zeros((1, 32, 32, 3)), train=False)
  assert out["pooled"].shape == (1, 128)


@pytest.mark.parametrize("head, keys", [
    ("l3", {"logit", "image_features", "audio_features"}),
    ("ave", {"logit", "distance", "image_embedding", "audio_embedding", "image_features",
             "audio_features"}),
    ("avol", {"logit", "loc_map", "loc_logits", "image_embedding", "audio_embedding",
              "image_features", "audio_features"}),
])
def test_net_outputs(head, keys):
  net = AVNet(head=head)
  variables, out = _shapes(net, jnp.zeros((3, 224, 224, 3), jnp.uint8),
                           jnp.zeros((3, 257, 200, 1)))
  assert set(out) == keys
  assert out["logit"].shape == (3,)
  for name in ("vision_tower", "audio_tower"):
    print(f"{head} {name}: {count_params(variables['params'][name]):,} params")
  if head != "l3":
    assert out["image_embedding"].shape == out["audio_embedding"].shape == (3, 128)
  if head == "avol":
    assert out["loc_map"].shape == (3, 14, 14)


def _small_net(head, seed=0):
  net = AVNet(head=head, width=1 / 16)
  image = jax.random.randint(jax.random.PRNGKey(seed), (4, 32, 32, 3), 0, 255).astype(jnp.uint8)
  audio = jax.random.normal(jax.random.PRNGKey(seed + 1), (4, 65, 50, 1))
  variables = net.init(jax.random.PRNGKey(seed), image, audio)
  return net, variables, image, audio


def test_avol_logit_is_the_max_of_its_map():
  net, variables, image, audio = _small_net("avol")
  out = net.apply(variables, image, audio)
  np.testing.assert_allclose(out["logit"], out["loc_logits"].max(axis=(1, 2)), rtol=1e-6)
  np.testing.assert_allclose(jax.nn.sigmoid(out["logit"]), out["loc_map"].max(axis=(1, 2)),
                             rtol=1e-5)
  assert float(out["loc_map"].min()) >= 0 and float(out["loc_map"].max()) <= 1


def test_embeddings_are_unit_vectors_and_match_the_forward_pass():
  for head in ("ave", "avol"):
    net, variables, image, audio = _small_net(head)
    out = net.apply(variables, image, audio)
    np.testing.assert_allclose(np.linalg.norm(out["audio_embedding"], axis=-1), 1, rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out["image_embedding"], axis=-1), 1, rtol=1e-4)
    np.testing.assert_allclose(net.apply(variables, image, method=AVNet.embed_image),
                               out["image_embedding"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.apply(variables, audio, method=AVNet.embed_audio),
                               out["audio_embedding"], rtol=1e-5, atol=1e-6)


def test_ave_fc3_starts_with_small_distance_meaning_corresponds():
  head = heads.AVEHead(dim=8)
  vision = {"pooled": jax.random.normal(jax.random.PRNGKey(0), (2, 16))}
  audio = {"pooled": jax.random.normal(jax.random.PRNGKey(1), (2, 16))}
  variables = head.init(jax.random.PRNGKey(2), vision, audio)
  fc3 = variables["params"]["fc3"]
  # "corresponds" (index 1) falls with distance, "not" (index 0) rises.
  assert float(fc3["kernel"][0, 1]) < 0 < float(fc3["kernel"][0, 0])
  distances = jnp.array([[0.0], [0.5], [1.5], [2.0]])
  two_way = head.apply(variables, distances, method=lambda m, d: m.fc3(d))
  logit = two_way[:, 1] - two_way[:, 0]
  assert bool(jnp.all(jnp.diff(logit) < 0))
  assert float(logit[0]) > 0 > float(logit[-1])
  # Identical embeddings (distance 0) give a confident "corresponds".
  same = head.apply(variables, vision, vision)
  assert bool(jnp.all(same["logit"] > 0))


@pytest.mark.parametrize("head", ["l3", "ave", "avol"])
def test_pairwise_logits_hold_every_pair_and_the_rows_own_pairs_on_the_diagonal(head):
  net = AVNet(head=head, width=1 / 16)
  rng = np.random.default_rng(0)
  image = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
  audio = rng.normal(size=(4, 33, 20, 1)).astype(np.float32)
  variables = net.init(jax.random.PRNGKey(1), image, audio[:3])
  grid = net.apply(variables, image, audio, method="pairwise_logits")
  assert grid.shape == (3, 4)
  for j in range(4):  # column j: every image with sound j, as the forward pass scores it
    column = net.apply(variables, image, np.repeat(audio[j:j + 1], 3, axis=0))["logit"]
    np.testing.assert_allclose(grid[:, j], column, rtol=1e-4, atol=1e-5)


def test_in_batch_targets_pair_each_frame_with_its_own_positive_sound_only():
  from avjax.train import step  # pylint: disable=g-import-not-at-top
  # Rows 0/1 show one frame (positive, negative), rows 2/3 another, row 4 a stand-in frame.
  batch = {"frame": jnp.array([7, 7, 8, 8, 2**30 + 8]), "label": jnp.array([1, 0, 1, 0, 1])}
  expected = np.zeros((5, 5), bool)
  expected[[0, 1], 0] = expected[[2, 3], 2] = expected[4, 4] = True
  np.testing.assert_array_equal(step.in_batch_targets(batch), expected)
  logits = jnp.where(jnp.asarray(expected), 5.0, -5.0)
  assert float(step.balanced_mean(((logits > 0) == expected).astype(jnp.float32), expected)) == 1.0


def test_dtype_auto_is_float32_on_cpu_and_bfloat16_computes_the_towers_in_bf16():
  assert jax.default_backend() == "cpu"
  model_cfg = config_lib.get_config("avol:tiny").model
  assert model_cfg.dtype == "auto" and nets.build_model(model_cfg).dtype == jnp.float32
  model_cfg.dtype = "bfloat16"
  net = nets.build_model(model_cfg)
  image = jnp.zeros((2, 32, 32, 3), jnp.uint8)
  audio = jnp.zeros((2, 65, 50, 1), jnp.float32)
  variables, _ = _shapes(net, image, audio)
  tower = jax.eval_shape(lambda: net.apply(
      net.init(jax.random.PRNGKey(0), image, audio), image, method=lambda m, x: m.vision_tower(
          nets.normalise_image(x), False)))
  assert tower["map"].dtype == jnp.bfloat16  # computed in bf16 ...
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))  # ... params in f32
