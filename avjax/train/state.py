"""The train state pytree, the optimiser, and sharded initialisation.

The state is built as jax.eval_shape(init) -> shardings -> jit(init, out_shardings), so no
full copy ever lives on one device before it is placed.
"""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from data_pipeline import media


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array


def learning_rate_schedule(train_cfg: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up, then x decay_rate every decay_every_steps (staircase)."""
  warmup = optax.linear_schedule(0.0, train_cfg.learning_rate, max(1, train_cfg.warmup_steps))
  decay = optax.exponential_decay(train_cfg.learning_rate, train_cfg.decay_every_steps,
                                  train_cfg.decay_rate, staircase=True)
  return optax.join_schedules([warmup, decay], [train_cfg.warmup_steps])


def make_optimizer(train_cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam with L2 weight decay added to the gradient, as in the papers."""
  parts = []
  if train_cfg.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(train_cfg.grad_clip_norm))
  parts += [optax.add_decayed_weights(train_cfg.weight_decay),
            optax.scale_by_adam(),
            optax.scale_by_learning_rate(learning_rate_schedule(train_cfg))]
  return optax.chain(*parts)


def dummy_inputs(data_cfg: ml_collections.ConfigDict, batch_size: int = 1):
  """Zero image and spectrogram batches of the configured sizes (for init and tracing)."""
  size = data_cfg.image_size
  image = np.zeros((batch_size, size, size, 3), np.uint8)
  audio = np.zeros((batch_size, *media.spectrogram_shape(data_cfg)), np.float32)
  return image, audio


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> TrainState:
  """A replicated, freshly initialised train state on `mesh`."""
  image, audio = dummy_inputs(config.data)

  def init(rng):
    init_rng, state_rng = jax.random.split(rng)
    variables = model.init(init_rng, image, audio, train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(params), rng=state_rng)

  abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  shardings = jax.tree.map(lambda _: replicated, abstract)
  # Raw uint32 keys (not typed key arrays) so the rng checkpoints like any other array.
  return jax.jit(init, out_shardings=shardings)(jax.random.PRNGKey(config.seed))


def count_params(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
