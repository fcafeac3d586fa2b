"""mT5 layers: parity with HF MT5ForConditionalGeneration, buckets, input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from praxis import base_layer, pax_fiddle

from pali_pax.convert.mt5 import mt5_config_from_hf
from pali_pax.fiddle_configs import mt5 as mt5_configs
from pali_pax.layers import mt5, relative_position
from tests.numerics import assert_f32_close, hf_config, mt5_chains
from tests.paths import MT5_HF as HF_DIR

# Fixtures `ref` (HF reference outputs) and `tiny` (the converted HF model): conftest.py.


def apply(model, variables, *args, method, mutable=False):
  with base_layer.JaxContext.new_context():
    return model.apply(variables, *args, method=method, mutable=mutable)


def encode_fn(mdl, ids, paddings):
  return mdl.encode(mdl.embed(ids), paddings)


# ------------------------------------------------------------------ buckets


def test_relative_buckets_match_hf_tables(ref):
  rel = ref['relative_positions']
  for key in [k for k in ref if k.startswith('buckets_')]:
    _, num_buckets, max_distance, kind = key.split('_')
    got = relative_position.relative_position_bucket(
      rel, kind == 'bi', int(num_buckets), int(max_distance)
    )
    np.testing.assert_array_equal(got, ref[key], err_msg=key)
    traced = relative_position.bucket_lookup(
      jnp.asarray(rel), kind == 'bi', int(num_buckets), int(max_distance)
    )
    np.testing.assert_array_equal(np.asarray(traced), ref[key], err_msg=key)


def test_relative_buckets_hand_computed():
  # rel = key - query. Bidirectional 32/128: 16 buckets per side, 8 exact.
  # Large: 8 + floor(log(d / 8) / log(16) * 8); right side adds 16.
  bi = {0: 0, -1: 1, -7: 7, -8: 8, -12: 9, -16: 10, -64: 14, -127: 15, -1000: 15}
  bi.update({1: 17, 7: 23, 16: 26, 1000: 31})
  # Unidirectional 32/128: keys to the right -> 0; 16 exact; 16 + floor(log(d/16)/log(8)*16).
  uni = {5: 0, 0: 0, -1: 1, -15: 15, -16: 16, -20: 17, -127: 31, -128: 31, -5000: 31}
  for table, bidirectional in ((bi, True), (uni, False)):
    rel = np.array(list(table))
    got = relative_position.relative_position_bucket(rel, bidirectional, 32, 128)
    assert dict(zip(rel.tolist(), got.tolist(), strict=True)) == table


# ------------------------------------------------------------------ parity


def test_logits_match_hf_on_padded_batch(tiny, ref):
  model, variables = tiny
  enc_pad = 1.0 - ref['encoder_mask'].astype(np.float32)
  dec_pad = 1.0 - ref['decoder_mask'].astype(np.float32)
  encoded = apply(model, variables, ref['encoder_ids'], enc_pad, method=encode_fn)
  logits = apply(
    model,
    variables,
    ref['encoder_ids'],
    enc_pad,
    ref['decoder_ids'],
    dec_pad,
    method=model.__call__,
  )
  assert logits.dtype == jnp.float32 and logits.shape == ref['logits'].shape
  enc_mask = ref['encoder_mask'][..., None] > 0
  dec_mask = ref['decoder_mask'][..., None] > 0
  # The references are float64 (make_mt5_fixtures.py): only our rounding counts.
  enc_chain, dec_chain = mt5_chains(
    hf_config(HF_DIR), ref['encoder_ids'].shape[1], ref['decoder_ids'].shape[1]
  )
  assert_f32_close(encoded, ref['encoder_output'], enc_chain, implementations=1, where=enc_mask)
  assert_f32_close(logits, ref['logits'], dec_chain, implementations=1, where=dec_mask)


# ------------------------------------------------------------------ errors


def test_out_of_vocab_ids_raise(tiny):
  model, variables = tiny
  for bad in ([[3, 128]], [[-1, 4]]):
    with pytest.raises(ValueError, match=r'outside \[0, 128\)'):
      apply(model, variables, np.array(bad, np.int32), method=model.embed)
  with pytest.raises(ValueError, match='integer'):
    mt5.check_token_ids(np.array([1.5]), 128)


@pytest.mark.parametrize(
  'overrides, match',
  [
    (dict(num_heads=0), 'num_heads'),
    (dict(num_heads=64, model_dims=32), 'num_heads'),
    (dict(relative_attention_num_buckets=7), 'buckets'),
    (dict(relative_attention_max_distance=2), 'max_distance'),
  ],
)
def test_inconsistent_config_raises(overrides, match):
  cfg = pax_fiddle.Config(
    mt5.Mt5EncoderDecoder,
    name='m',
    vocab_size=16,
    model_dims=32,
    num_encoder_layers=1,
    num_decoder_layers=1,
    num_heads=4,
    dim_per_head=8,
    hidden_dims=16,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
  )
  for key, value in overrides.items():
    setattr(cfg, key, value)
  ids = jnp.zeros((1, 2), jnp.int32)
  with pytest.raises(ValueError, match=match):
    base_layer.instantiate(cfg).init(jax.random.PRNGKey(0), ids, ids * 0.0, ids, ids * 0.0)


def test_fiddle_config_matches_hf_config():
  cfg = mt5_config_from_hf(HF_DIR)
  tiny = mt5_configs.mt5_config(
    'tiny', vocab_size=128, relative_attention_num_buckets=8, relative_attention_max_distance=16
  )
  for field in (
    'vocab_size',
    'model_dims',
    'num_encoder_layers',
    'num_decoder_layers',
    'num_heads',
    'dim_per_head',
    'hidden_dims',
    'relative_attention_num_buckets',
    'relative_attention_max_distance',
  ):
    assert getattr(cfg, field) == getattr(tiny, field), field
