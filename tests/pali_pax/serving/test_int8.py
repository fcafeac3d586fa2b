"""int8 serving weights: per-channel error bound, bytes (float16 lm head), the logit error bound."""

import jax
import numpy as np
import pytest

from pali_pax.core import errors
from pali_pax.inference import Predictor
from pali_pax.serving import int8

LM_HEAD = ('mt5', 'softmax', 'logits_ffn', 'linear', 'w')


@pytest.mark.parametrize(
  'path, shape, channel_shape',
  [
    (('ff', 'linear', 'w'), (6, 5), (1, 5)),
    (('repeat', 'ff', 'linear', 'w'), (3, 6, 5), (3, 1, 5)),  # one scale set per layer
    (('attn', 'query', 'w'), (8, 2, 4), (1, 2, 4)),
    (('attn', 'post', 'w'), (8, 2, 4), (8, 1, 1)),
    (('vit', 'patch_embedding', 'w'), (4, 4, 3, 6), (1, 1, 1, 6)),
    (('mt5', 'token_emb', 'emb_var'), (10, 6), (10, 1)),
  ],
)
def test_error_is_at_most_half_a_step_per_channel(path, shape, channel_shape):
  w = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
  w[0] = 0.0  # an all-zero slice must not divide by zero
  axes = int8.reduced_axes(path, len(shape))
  qt = int8.quantize(w, axes)
  assert qt.q.dtype == np.int8 and qt.scale.shape == channel_shape
  assert np.abs(qt.q).max() == int8.QMAX  # each channel's largest weight uses the full range
  back = np.asarray(int8.dequantize_params(qt))
  assert np.all(np.abs(back - w) <= qt.scale / 2 + 1e-7)


def test_norms_biases_and_positions_stay_float():
  for path in [
    ('norm', 'scale'),
    ('post', 'b'),
    ('vit', 'pos_embedding'),
    ('relative_bias', 'emb_var'),
  ]:
    assert int8.reduced_axes(path, 2) is None
  with pytest.raises(errors.ConfigError, match='quantize'):
    int8.apply({}, 'int4')


def test_hand_values_round_to_the_nearest_step():
  """Column 0: s = 1.27 / 127 = 0.01; column 1: s = |-2.54| / 127 = 0.02 (sign ignored)."""
  w = np.array([[1.27, -2.54], [-0.0049, 1.0], [0.0149, 0.0299], [0.0151, 0.0301]], np.float32)
  qt = int8.quantize(w, (0,))
  np.testing.assert_allclose(qt.scale, [[0.01, 0.02]], rtol=1e-6)
  np.testing.assert_array_equal(qt.q, [[127, -127], [0, 50], [1, 1], [2, 2]])
  back = np.asarray(int8.dequantize_params(qt))
  err = np.abs(back - w)
  np.testing.assert_allclose(err[2:], [[0.0049, 0.0099], [0.0049, 0.0099]], atol=1e-6)
  assert np.all(err <= qt.scale / 2 + 1e-7)


def test_planned_bytes_from_hand_shapes():
  f32 = jax.ShapeDtypeStruct
  tree = {
    'ff': {'linear': {'w': f32((6, 5), np.float32)}},  # 30 int8 + 5 scales
    'mt5': {'softmax': {'logits_ffn': {'linear': {'w': f32((4, 10), np.float32)}}}},
    'norm': {'scale': f32((5,), np.float32)},  # float32
  }
  assert int8.planned_bytes(tree) == 30 + 4 * 5 + 2 * 40 + 4 * 5
  assert int8.planned_bytes(tree, head='int8') == 30 + 4 * 5 + 40 + 4 * 10 + 4 * 5
  with pytest.raises(errors.ConfigError, match='head'):
    int8.planned_bytes(tree, head='int4')


@pytest.fixture(scope='module')
def predictors(mt5_hf_2100, vit_npz_tiny8):
  p = Predictor.from_components(mt5=mt5_hf_2100, vit=vit_npz_tiny8)
  return p, Predictor(p.model_cfg, jax.device_get(p.params), quantize='int8')


def test_bytes_match_the_plan_from_shapes(predictors):
  """Stored bytes == planned_bytes (the rule the PaLI-3B ratio is computed with)."""
  p, q = predictors
  params = jax.device_get(p.params)
  f32 = int8.weight_bytes(params)
  assert int8.float32_bytes(jax.device_get(q.params)) == f32
  assert int8.weight_bytes(q.params) == int8.planned_bytes(params)
  all_int8 = int8.quantize_params(params, head='int8')
  assert int8.weight_bytes(all_int8) == int8.planned_bytes(params, head='int8')
  assert 0.25 <= int8.weight_bytes(all_int8) / f32 <= 0.3
  assert int8.quantized_fraction(all_int8) > 0.95
  # The head ([64, 2100] here) is float16: 2 bytes per weight instead of 1 + scales.
  head = np.asarray(params['mt5']['softmax']['logits_ffn']['linear']['w'])
  served = jax.device_get(q.params)['mt5']['softmax']['logits_ffn']['linear']['w']
  assert served.dtype == np.float16
  assert int8.weight_bytes(q.params) - int8.weight_bytes(all_int8) == head.size - 4 * head.shape[1]
  back = np.asarray(int8.dequantize_params(served))
  assert back.dtype == np.float32
  # float16 rounding: within 2^-11 of |w| (normal range) or half the subnormal step 2^-25.
  assert np.all(np.abs(back - head) <= np.maximum(np.abs(head) * 2.0**-11, 2.0**-25))


def test_lm_head_logit_error_within_the_step_bound(predictors):
  """Quantizing the lm head W [D, V] alone moves logit v by at most sum_i |h_i| * s_v / 2."""
  p, _ = predictors
  params = jax.device_get(p.params)
  w = np.asarray(params['mt5']['softmax']['logits_ffn']['linear']['w'], np.float64)
  qt = int8.quantize(w, int8.reduced_axes(LM_HEAD, 2))
  head_only = jax.tree_util.tree_map(lambda x: x, params)
  head_only['mt5']['softmax']['logits_ffn']['linear']['w'] = qt
  q = Predictor(p.model_cfg, head_only)
  rng = np.random.default_rng(1)
  ids = rng.integers(3, 2000, (2, 7)).astype(np.int32)
  ids[:, -1] = 1
  dec = np.concatenate([np.zeros((2, 1), np.int32), ids[:, :4]], 1)
  images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  want = p.text_logits(ids, dec, images=images).astype(np.float64)
  got = q.text_logits(ids, dec, images=images).astype(np.float64)
  hidden = want @ np.linalg.pinv(w)  # logits = hidden @ W, W of full row rank D
  bound = np.abs(hidden) @ (np.ones_like(w) * qt.scale / 2)
  err = np.abs(got - want)
  assert np.all(err <= bound * 1.01 + 1e-4), (err - bound).max()
  assert err.max() > 0  # the head really was quantized
