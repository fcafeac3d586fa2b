"""Inference programs compile without XLA CPU's tree-reduction rewrite; training ones keep it."""

import jax
import jax.numpy as jnp
import numpy as np

from pali_pax.core import xla_cpu


def _softmax_hlo(tuned: bool) -> str:
  x = jax.ShapeDtypeStruct((2, 3, 100), jnp.float32)
  fn = xla_cpu.inference_jit(lambda x: jax.nn.softmax(x, -1), tuned=tuned)
  return fn.lower(x).compile().as_text()


def test_the_rewrite_is_off_only_for_tuned_inference_programs():
  # A reduction over 100 > 32 elements: XLA's pass splits it into a reduce-window.
  assert 'reduce-window' in _softmax_hlo(tuned=False)
  assert 'reduce-window' not in _softmax_hlo(tuned=True)


def test_the_environment_switch_restores_xla_defaults(monkeypatch):
  assert xla_cpu.inference_options() == xla_cpu.INFERENCE_OPTIONS
  monkeypatch.setenv(xla_cpu.DEFAULTS_ENV, '1')
  assert xla_cpu.inference_options() is None
  assert 'reduce-window' in _softmax_hlo(tuned=True)


def test_results_agree_within_float32_summation_error():
  x = np.random.default_rng(0).standard_normal((4, 3000)).astype(np.float32)
  a = np.asarray(xla_cpu.inference_jit(lambda x: jax.nn.log_softmax(x, -1))(x))
  b = np.asarray(xla_cpu.inference_jit(lambda x: jax.nn.log_softmax(x, -1), tuned=False)(x))
  # log-sum-exp of n terms summed in one pass: relative error <= n * eps (float32).
  bound = 3000 * np.finfo(np.float32).eps * np.abs(b).max()
  assert np.abs(a - b).max() <= bound
