"""The jitted train and eval steps: pure functions of (state, batch), sharded over the mesh.

Batches are sharded along the "data" axis and the state is replicated; XLA inserts the
gradient all-reduce, and BatchNorm statistics are those of the global batch, so N devices
compute what one device computes on the same global batch.
"""

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from avjax.train.state import TrainState


def correspondence_loss(logit: jax.Array, label: jax.Array) -> jax.Array:
  """Binary cross-entropy on "corresponds" (equal to the papers' 2-way softmax loss)."""
  return optax.sigmoid_binary_cross_entropy(logit, label.astype(jnp.float32)).mean()


def _global_norm(tree) -> jax.Array:
  return optax.tree.norm(tree)


def train_step(state: TrainState, batch: dict, *, model: nn.Module,
               tx: optax.GradientTransformation, schedule: optax.Schedule):
  """One Adam step on a batch; returns the new state and a dict of scalar metrics."""
  rng = jax.random.fold_in(state.rng, state.step)  # per-step randomness for stochastic layers

  def loss_fn(params):
    out, mutated = model.apply(
        {"params": params, "batch_stats": state.batch_stats}, batch["image"], batch["audio"],
        train=True, mutable=["batch_stats"], rngs={"dropout": rng})
    return correspondence_loss(out["logit"], batch["label"]), (out, mutated["batch_stats"])

  (loss, (out, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  correct = (out["logit"] > 0) == (batch["label"] > 0)
  metrics = {
      "loss": loss,
      "accuracy": jnp.mean(correct.astype(jnp.float32)),
      "learning_rate": schedule(state.step),
      "grad_norm": _global_norm(grads),
      "param_norm": _global_norm(params),
      "update_norm": _global_norm(updates),
      "replaced": jnp.sum(batch.get("replaced", jnp.zeros((), jnp.int32))),
  }
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state)
  return new_state, metrics


def predict(state: TrainState, image: jax.Array, audio: jax.Array, *, model: nn.Module) -> dict:
  """The net's outputs in inference mode (running BatchNorm statistics)."""
  return model.apply({"params": state.params, "batch_stats": state.batch_stats},
                     image, audio, train=False)


def jit_steps(model: nn.Module, tx: optax.GradientTransformation, schedule: optax.Schedule,
              state_sharding, batch_sharding) -> tuple[Callable, Callable]:
  """The jitted (train_step, predict) pair with their shardings; the state is donated."""
  train = jax.jit(functools.partial(train_step, model=model, tx=tx, schedule=schedule),
                  in_shardings=(state_sharding, batch_sharding),
                  out_shardings=(state_sharding, None), donate_argnums=0)
  infer = jax.jit(functools.partial(predict, model=model),
                  in_shardings=(state_sharding, batch_sharding, batch_sharding))
  return train, infer
