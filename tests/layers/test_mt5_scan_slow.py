"""Slow tier of test_mt5_scan.py: gradients through the scanned (rematerialised) mT5 stacks."""

import jax
import jax.numpy as jnp
import pytest

from pali_pax.core import tree
from tests.layers.test_mt5_scan import _logits, models
from tests.numerics import assert_f32_close, hf_config, mt5_chains
from tests.paths import MT5_HF as HF_DIR

pytestmark = pytest.mark.slow
__all__ = ['models']  # the fixture, built once in this module too


def test_scanned_gradients_match(models, ref):
  """Remat inside the scan must not change the gradient."""
  flat_model, flat_params, scan_model, scan_params = models

  def loss(model):
    def f(params):
      logits = _logits(model, params, ref)
      return jnp.sum(jax.nn.log_softmax(logits)[..., 3] * ref['decoder_mask'])

    return f

  g_flat = tree.flatten(jax.jit(jax.grad(loss(flat_model)))(flat_params))
  g_scan = tree.flatten(jax.jit(jax.grad(loss(scan_model)))(scan_params))
  g_scan = tree.unstack_layer_params(g_scan)
  assert sorted(g_scan) == sorted(g_flat)
  # Backward pass: the forward chain, the log-softmax and the same chain back again.
  _, chain = mt5_chains(hf_config(HF_DIR), ref['encoder_ids'].shape[1], ref['decoder_ids'].shape[1])
  chain = 2 * chain + ref['logits'].shape[-1]
  for k in g_flat:
    assert_f32_close(g_scan[k], g_flat[k], chain, err_msg=k)
