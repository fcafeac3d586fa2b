"""token_xent against hand-computed cross-entropy, smoothing and z-loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pali_pax import losses
from tests.numerics import assert_f32_close


def _np_log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_plain_xent_matches_hand_computation():
  logits = np.array([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]]], np.float32)
  labels = np.array([[0, 2]])
  weights = np.array([[1.0, 1.0]], np.float32)
  out = losses.token_xent(logits, labels, weights)
  # Row 1: -log softmax([2, 0, -1])[0]; row 2: uniform -> log 3.
  row1 = -(2.0 - np.log(np.exp(2.0) + 1.0 + np.exp(-1.0)))
  np.testing.assert_allclose(out.per_token_nll[0], [row1, np.log(3.0)], rtol=1e-6)
  np.testing.assert_allclose(out.total_loss, (row1 + np.log(3.0)) / 2, rtol=1e-6)
  np.testing.assert_allclose(out.per_sequence_logprob, [-(row1 + np.log(3.0))], rtol=1e-6)
  assert float(out.accuracy) == pytest.approx(0.5)  # row 2's argmax is 0, label 2


def test_weights_exclude_padding():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 4, 7)).astype(np.float32)
  labels = rng.integers(0, 7, size=(2, 4))
  weights = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], np.float32)
  out = losses.token_xent(logits, labels, weights)
  nll = -np.take_along_axis(_np_log_softmax(logits), labels[..., None], -1)[..., 0]
  np.testing.assert_allclose(out.total_loss, (nll * weights).sum() / 5, rtol=1e-5)
  # Changing a padded logit must not change the loss.
  logits2 = logits.copy()
  logits2[0, 3] += 100.0
  assert float(losses.token_xent(logits2, labels, weights).total_loss) == pytest.approx(
    float(out.total_loss), rel=1e-6
  )


def test_label_smoothing_is_cross_entropy_with_smoothed_targets_minus_its_entropy():
  rng = np.random.default_rng(1)
  v, eps = 5, 0.1
  logits = rng.normal(size=(1, 3, v)).astype(np.float32)
  labels = np.array([[1, 4, 0]])
  weights = np.ones((1, 3), np.float32)
  q = np.full((1, 3, v), eps / (v - 1))
  np.put_along_axis(q, labels[..., None], 1 - eps, -1)
  expected = -(q * _np_log_softmax(logits)).sum(-1) + (q * np.log(q)).sum(-1)
  out = losses.token_xent(logits, labels, weights, label_smoothing=eps)
  np.testing.assert_allclose(out.per_token_xent, expected, rtol=1e-5, atol=1e-6)


def test_z_loss_adds_squared_log_normaliser():
  logits = np.array([[[1.0, 2.0, 3.0]]], np.float32)
  out = losses.token_xent(logits, np.array([[2]]), np.ones((1, 1), np.float32), z_loss_weight=1e-2)
  log_z = np.log(np.exp([1.0, 2.0, 3.0]).sum())
  np.testing.assert_allclose(out.avg_z_loss, 1e-2 * log_z**2, rtol=1e-6)
  np.testing.assert_allclose(out.total_loss, out.avg_xent + 1e-2 * log_z**2, rtol=1e-6)


def test_per_example_loss_is_the_mean_of_each_rows_token_mean():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(3, 4, 7)).astype(np.float32)
  labels = rng.integers(0, 7, size=(3, 4))
  # A 1-token row, a 3-token row, and a row with no weight (eval padding): excluded.
  weights = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]], np.float32)
  out = losses.token_xent(logits, labels, weights, per_example=True)
  nll = -np.take_along_axis(_np_log_softmax(logits), labels[..., None], -1)[..., 0]
  expected = (nll[0, 0] + nll[1, :3].mean()) / 2
  np.testing.assert_allclose(out.total_loss, expected, rtol=1e-5)
  assert float(out.loss_weight) == 2.0
  # The token-level figures are unchanged; only total_loss is averaged per example.
  by_token = losses.token_xent(logits, labels, weights)
  np.testing.assert_allclose(out.avg_xent, by_token.avg_xent, rtol=1e-6)
  np.testing.assert_allclose(by_token.total_loss, (nll * weights).sum() / 4, rtol=1e-5)
  assert float(by_token.loss_weight) == 4.0


def _np_grad(logits, labels, weights, eps, z, per_example):
  """d total_loss / d logits in float64, from the closed form of each term."""
  x = logits.astype(np.float64)
  v = x.shape[-1]
  p = np.exp(_np_log_softmax(x))
  y = np.zeros_like(p)
  np.put_along_axis(y, labels[..., None], 1.0, -1)
  on, off = 1.0 - eps, eps / (v - 1)
  log_z = np.log(np.exp(x).sum(-1, keepdims=True))
  # nll' = p - y; (sum of log-probs)' = 1 - V p; (z log_z^2)' = 2 z log_z p.
  per_token = (on - off) * (p - y) - off * (1.0 - v * p) + 2.0 * z * log_z * p
  if per_example:
    rows = weights.sum(-1, keepdims=True)
    scale = weights / np.maximum(rows, 1e-9) / (rows > 0).sum()
  else:
    scale = weights / weights.sum()
  return per_token * scale[..., None]


@pytest.mark.parametrize('per_example', [False, True])
@pytest.mark.parametrize('eps,z', [(0.0, 0.0), (0.1, 1e-2)])
def test_gradient_is_softmax_minus_target_per_weighted_token(per_example, eps, z):
  rng = np.random.default_rng(3)
  v = 11
  logits = (3.0 * rng.normal(size=(3, 4, v))).astype(np.float32)
  labels = rng.integers(0, v, size=(3, 4))
  weights = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], np.float32)

  def loss(x):
    out = losses.token_xent(x, labels, weights, eps, z, per_example=per_example)
    return out.total_loss

  got = jax.grad(loss)(jnp.asarray(logits))
  want = _np_grad(logits, labels, weights, eps, z, per_example)
  # Softmax over V, a sum over V for smoothing, then the weighted mean: ~2V + 8 roundings.
  assert_f32_close(got, want, chain=2 * v + 8, implementations=1, scale=1.0)
  assert np.all(np.asarray(got)[2] == 0.0)  # no weight, no gradient
