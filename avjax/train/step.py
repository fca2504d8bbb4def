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


NEGATIVES = ("pairs", "batch")  # the values of train.negatives (see train_step)


def correspondence_loss(logit: jax.Array, label: jax.Array) -> jax.Array:
  """Binary cross-entropy on "corresponds" (equal to the papers' 2-way softmax loss)."""
  return optax.sigmoid_binary_cross_entropy(logit, label.astype(jnp.float32)).mean()


def in_batch_targets(batch: dict) -> jax.Array:
  """[B, B] targets of `pairwise_logits`: image i corresponds to sound j exactly when row j is
  a positive showing the same frame as row i (rows of one frame share batch["frame"])."""
  same_frame = batch["frame"][:, None] == batch["frame"][None, :]
  return same_frame & (batch["label"][None, :] > 0)


def balanced_mean(values: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean over positive pairs and mean over negative pairs, weighted half each (as in the pair
  loss, where they are half of the rows each)."""
  targets = targets.astype(jnp.float32)
  pos = jnp.sum(values * targets) / jnp.maximum(jnp.sum(targets), 1.0)
  neg = jnp.sum(values * (1 - targets)) / jnp.maximum(jnp.sum(1 - targets), 1.0)
  return 0.5 * (pos + neg)


def in_batch_loss(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Cross-entropy over all image-sound pairs of the batch, positives and negatives balanced."""
  return balanced_mean(optax.sigmoid_binary_cross_entropy(logits, targets.astype(jnp.float32)),
                       targets)


def _global_norm(tree) -> jax.Array:
  return optax.tree.norm(tree)


def train_step(state: TrainState, batch: dict, *, model: nn.Module,
               tx: optax.GradientTransformation, schedule: optax.Schedule,
               negatives: str = "pairs"):
  """One Adam step on a batch; returns the new state and a dict of scalar metrics.

  negatives="pairs" is the papers' loss: each row's image against that row's sound. "batch"
  scores every image against every sound of the batch (B^2 pairs from the same tower passes),
  which gives many more negatives per step. Accuracy is balanced either way: over the rows'
  pairs (half positive), or the mean of the accuracies on positive and on negative pairs.
  """
  rng = jax.random.fold_in(state.rng, state.step)  # per-step randomness for stochastic layers
  variables = lambda params: {"params": params, "batch_stats": state.batch_stats}

  def loss_fn(params):
    if negatives == "batch":
      logits, mutated = model.apply(
          variables(params), batch["image"], batch["audio"], train=True,
          method="pairwise_logits", mutable=["batch_stats"], rngs={"dropout": rng})
      targets = in_batch_targets(batch)
      loss = in_batch_loss(logits, targets)
      accuracy = balanced_mean(((logits > 0) == targets).astype(jnp.float32), targets)
    else:
      out, mutated = model.apply(
          variables(params), batch["image"], batch["audio"], train=True,
          mutable=["batch_stats"], rngs={"dropout": rng})
      loss = correspondence_loss(out["logit"], batch["label"])
      accuracy = jnp.mean(((out["logit"] > 0) == (batch["label"] > 0)).astype(jnp.float32))
    return loss, (accuracy, mutated["batch_stats"])

  (loss, (accuracy, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {
      "loss": loss,
      "accuracy": accuracy,
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
              state_sharding, batch_sharding,
              negatives: str = "pairs") -> tuple[Callable, Callable]:
  """The jitted (train_step, predict) pair with their shardings; the state is donated."""
  train = jax.jit(functools.partial(train_step, model=model, tx=tx, schedule=schedule,
                                    negatives=negatives),
                  in_shardings=(state_sharding, batch_sharding),
                  out_shardings=(state_sharding, None), donate_argnums=0)
  infer = jax.jit(functools.partial(predict, model=model),
                  in_shardings=(state_sharding, batch_sharding, batch_sharding))
  return train, infer
