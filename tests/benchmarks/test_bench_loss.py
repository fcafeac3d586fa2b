"""benchmarks.loss compares like with like: both variants give one loss and one gradient."""

import os
import sys

import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks import loss  # noqa: E402
from tests.numerics import assert_f32_close  # noqa: E402


def test_variants_agree_and_the_table_has_every_shape(monkeypatch):
  rng = np.random.default_rng(0)
  b, t, v, d = 3, 5, 17, 4
  h = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(d, v)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, v, size=(b, t)), jnp.int32)
  weights = jnp.asarray(rng.integers(0, 2, size=(b, t)), jnp.float32)
  ours = loss.step_fn(loss.ours_xent)(h, w, labels, weights)
  ref = loss.step_fn(loss.autodiff_xent)(h, w, labels, weights)
  # Matmul over D, softmax over V, the weighted mean over B * T tokens.
  chain = d + 2 * v + b * t
  for got, want in zip([ours[0], *ours[1]], [ref[0], *ref[1]], strict=True):
    assert_f32_close(got, want, chain=chain)
  monkeypatch.setattr(loss, 'SHAPES', {'a': (2, 3, 11, 4), 'b': (1, 2, 7, 3)})
  rows = loss.run(repeats=1)
  assert [r[0] for r in rows] == ['a', 'b']
  assert all(r[1] > 0 and r[2] > 0 and np.isclose(r[3], r[2] / r[1]) for r in rows)
