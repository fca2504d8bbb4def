"""The three heads: L3 correspondence, AVE embedding + distance, AVOL multiple-instance map.

Every head maps the two towers' outputs to a dict whose "logit" is the correspondence logit
(p(corresponds) = sigmoid(logit)), and `pairwise` scores every image of a batch against every
sound of it ([B_image, B_audio] logits; train.negatives="batch"). A 2-way softmax is the same
model as a sigmoid of the difference of its two logits, so L3 and AVE report
logit = l[corresponds] - l[not].
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def l2_normalise(x: jnp.ndarray, eps: float = 1e-6) -> jnp.ndarray:
  return x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + eps)


class L3Head(nn.Module):
  """L3-Net: concat(vision 512, audio 512) -> fc128 + ReLU -> fc2.

  L3-Net has no joint space: its "embeddings" for retrieval and export are the tower features.
  """
  dim: int = 128

  def embed_image(self, vision: dict) -> jnp.ndarray:
    return vision["pooled"].astype(jnp.float32)

  def embed_audio(self, audio: dict) -> jnp.ndarray:
    return audio["pooled"].astype(jnp.float32)

  @nn.compact
  def __call__(self, vision: dict, audio: dict) -> dict:
    x = jnp.concatenate([vision["pooled"], audio["pooled"]], axis=-1).astype(jnp.float32)
    x = nn.relu(nn.Dense(self.dim, name="fc1")(x))
    two_way = nn.Dense(2, name="fc2")(x)  # index 1 = corresponds
    return {"logit": two_way[..., 1] - two_way[..., 0]}

  def pairwise(self, vision: dict, audio: dict) -> jnp.ndarray:
    # The fc layers act on the last axis, so a [B, B, 1024] grid of concatenations works as is.
    v, a = vision["pooled"], audio["pooled"]
    grid_v = jnp.broadcast_to(v[:, None], (v.shape[0], a.shape[0], v.shape[-1]))
    grid_a = jnp.broadcast_to(a[None, :], (v.shape[0], a.shape[0], a.shape[-1]))
    return self({"pooled": grid_v}, {"pooled": grid_a})["logit"]


class Embedder(nn.Module):
  """512 -> fc + ReLU -> fc -> L2-normalise: one tower's joint embedding (AVE and AVOL audio)."""
  dim: int = 128

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    x = nn.relu(nn.Dense(self.dim, name="fc1")(x.astype(jnp.float32)))
    return l2_normalise(nn.Dense(self.dim, name="fc2")(x))


def distance_fc_init(key, shape, dtype=jnp.float32):
  """fc3 kernel [1, 2]: a larger distance raises "not" (index 0) and lowers "corresponds" (1)."""
  del key
  assert shape == (1, 2), shape
  return jnp.array([[1.0, -1.0]], dtype)


def distance_bias_init(key, shape, dtype=jnp.float32):
  """fc3 bias: distances below 1 (half the range of unit vectors) start as "corresponds"."""
  del key
  return jnp.array([-1.0, 1.0], dtype).reshape(shape)


class AVEHead(nn.Module):
  """AVE-Net: per-tower 128-d unit embeddings; Euclidean distance -> fc 1->2."""
  dim: int = 128

  def setup(self):
    self.vision_embedder = Embedder(self.dim)
    self.audio_embedder = Embedder(self.dim)
    self.fc3 = nn.Dense(2, kernel_init=distance_fc_init, bias_init=distance_bias_init)

  def embed_image(self, vision: dict) -> jnp.ndarray:
    return self.vision_embedder(vision["pooled"])

  def embed_audio(self, audio: dict) -> jnp.ndarray:
    return self.audio_embedder(audio["pooled"])

  def logit(self, v: jnp.ndarray, a: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(logit, distance) of embeddings that broadcast against each other."""
    distance = jnp.sqrt(jnp.sum(jnp.square(v - a), axis=-1, keepdims=True) + 1e-12)
    two_way = self.fc3(distance)
    return two_way[..., 1] - two_way[..., 0], distance[..., 0]

  def __call__(self, vision: dict, audio: dict) -> dict:
    v, a = self.embed_image(vision), self.embed_audio(audio)
    logit, distance = self.logit(v, a)
    return {"logit": logit, "distance": distance, "image_embedding": v, "audio_embedding": a}

  def pairwise(self, vision: dict, audio: dict) -> jnp.ndarray:
    v, a = self.embed_image(vision), self.embed_audio(audio)
    return self.logit(v[:, None], a[None, :])[0]


class AVOLHead(nn.Module):
  """AVOL-Net: audio embedding . per-location vision vectors -> calibrated map -> max (MIL).

  The vision side is two 1x1 convs (512->128 + ReLU, 128->128) with no normalisation; the map
  is sigmoid(scale * score + bias) with a learned scalar scale and bias (a 1x1 conv on the
  score map), and the clip's correspondence is the map's maximum.
  """
  dim: int = 128

  def setup(self):
    self.vision_conv1 = nn.Conv(self.dim, (1, 1))
    self.vision_conv2 = nn.Conv(self.dim, (1, 1))
    self.audio_embedder = Embedder(self.dim)
    self.calibration = nn.Conv(1, (1, 1), kernel_init=nn.initializers.ones,
                               bias_init=nn.initializers.zeros)

  def vision_vectors(self, vision: dict) -> jnp.ndarray:
    """Per-location 128-d vision vectors [B, h, w, 128]."""
    x = nn.relu(self.vision_conv1(vision["map"].astype(jnp.float32)))
    return self.vision_conv2(x)

  def embed_image(self, vision: dict) -> jnp.ndarray:
    """A whole-image embedding for retrieval: the max over locations, L2-normalised."""
    return l2_normalise(jnp.max(self.vision_vectors(vision), axis=(1, 2)))

  def embed_audio(self, audio: dict) -> jnp.ndarray:
    return self.audio_embedder(audio["pooled"])

  def localise(self, vision_vectors: jnp.ndarray, audio_embedding: jnp.ndarray) -> jnp.ndarray:
    """Calibrated score map (logits) [B, h, w] of where the sound is."""
    scores = jnp.einsum("bhwc,bc->bhw", vision_vectors, audio_embedding)
    return self.calibration(scores[..., None])[..., 0]

  def pairwise(self, vision: dict, audio: dict) -> jnp.ndarray:
    vectors, a = self.vision_vectors(vision), self.embed_audio(audio)
    scores = jnp.einsum("ihwc,jc->ijhw", vectors, a)
    return jnp.max(self.calibration(scores[..., None])[..., 0], axis=(2, 3))

  def __call__(self, vision: dict, audio: dict) -> dict:
    vectors = self.vision_vectors(vision)
    a = self.embed_audio(audio)
    map_logits = self.localise(vectors, a)
    return {"logit": jnp.max(map_logits, axis=(1, 2)),  # MIL: max-pool over locations
            "loc_logits": map_logits,
            "loc_map": jax.nn.sigmoid(map_logits),
            "image_embedding": l2_normalise(jnp.max(vectors, axis=(1, 2))),
            "audio_embedding": a}
