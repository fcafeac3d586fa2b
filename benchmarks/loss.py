"""The loss backward, side by side: our written-out gradient against plain autodiff.

`losses.token_xent` takes its gradient from `losses.nll_and_log_z`'s custom VJP
(softmax times the cotangents, minus the one-hot). The comparison is jax's own
autodiff of the textbook formulation (log-softmax, then take_along_axis), which
is what the loss computed before. Both run after the lm head (`h @ w`), as in
the model, since XLA lays the logits gradient out for the weight-gradient dot
that consumes it. Round-robin timing (`timing.interleave`) of one jitted
value-and-grad per variant and shape:

    python -m benchmarks.loss --repeats 20
"""

import argparse
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import interleave
from pali_pax import losses

# name: (batch, target tokens, vocabulary, model width)
SHAPES = {
  'demo b32': (32, 16, 2100, 32),
  'demo b64': (64, 16, 2100, 32),
  'demo b128': (128, 16, 2100, 32),
  'small b8': (8, 16, 32000, 512),
}


def autodiff_xent(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
  """Weighted token-mean cross-entropy, differentiated by jax (the comparison)."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
  return jnp.sum(nll * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def ours_xent(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
  return losses.token_xent(logits, labels, weights).total_loss


def step_fn(xent: Any) -> Any:
  """jit(value_and_grad) of xent(h @ w) with respect to (h, w)."""

  def loss(h, w, labels, weights):
    return xent(jnp.einsum('btd,dv->btv', h, w), labels, weights)

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def run(repeats: int) -> list[list[Any]]:
  """Rows [shape, ours ms, autodiff ms, autodiff / ours]."""
  rng = np.random.default_rng(0)
  rows = []
  for name, (b, t, v, d) in SHAPES.items():
    h = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(d, v)) / np.sqrt(d), jnp.float32)
    labels = jnp.asarray(rng.integers(0, v, size=(b, t)), jnp.int32)
    weights = jnp.ones((b, t), jnp.float32)
    args = (h, w, labels, weights)
    fns = {
      label: functools.partial(step_fn(xent), *args)
      for label, xent in (('ours', ours_xent), ('autodiff', autodiff_xent))
    }
    times = interleave(fns, repeats, warmup=2, label=f'{name} ')
    ours, ref = times['ours'].median, times['autodiff'].median
    rows.append([name, 1e3 * ours, 1e3 * ref, ref / ours])
  return rows


def main(argv: Any = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--repeats', type=int, default=20)
  args = p.parse_args(argv)
  print('| shape (B, T, V, D) | ours ms | autodiff ms | autodiff / ours |')
  print('|---|---:|---:|---:|')
  for name, ours, ref, ratio in run(args.repeats):
    print(f'| {name} {SHAPES[name]} | {ours:.2f} | {ref:.2f} | {ratio:.2f} |')


if __name__ == '__main__':
  main()
