"""int8 serving weights: per-channel error bound, bytes, and the logit error it implies."""

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


@pytest.fixture(scope='module')
def predictors(mt5_hf_2100, vit_npz_tiny8):
  p = Predictor.from_components(mt5=mt5_hf_2100, vit=vit_npz_tiny8)
  return p, Predictor(p.model_cfg, jax.device_get(p.params), quantize='int8')


def test_int8_weights_are_about_a_quarter_of_float32(predictors):
  p, q = predictors
  ratio = int8.weight_bytes(q.params) / int8.weight_bytes(p.params)
  assert 0.25 <= ratio <= 0.3, ratio
  assert int8.float32_bytes(jax.device_get(q.params)) == int8.weight_bytes(p.params)
  assert int8.quantized_fraction(jax.device_get(q.params)) > 0.95


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
