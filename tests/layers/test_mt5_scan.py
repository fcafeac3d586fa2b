"""mT5 with scanned stacks (praxis Repeat, opt-in): same numbers, stacked param tree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from praxis import base_layer, pax_fiddle, sample_decode

from pali_pax.convert.mt5 import load_mt5, mt5_config_from_hf
from pali_pax.core import tree
from tests.numerics import assert_f32_close, hf_config, mt5_chains
from tests.paths import MT5_HF as HF_DIR

DECODE_CACHE = base_layer.DECODE_CACHE


@pytest.fixture(scope='module')
def models():
  """(unscanned model, its params, scanned model, its params), both from the HF fixture."""
  flat_cfg = mt5_config_from_hf(HF_DIR)
  scan_cfg = mt5_config_from_hf(HF_DIR, scan=True)
  return (
    base_layer.instantiate(flat_cfg),
    load_mt5(HF_DIR, flat_cfg, progress=False),
    base_layer.instantiate(scan_cfg),
    load_mt5(HF_DIR, scan_cfg, progress=False),
  )


def _logits(model, params, ref):
  enc_pad = 1.0 - ref['encoder_mask'].astype(np.float32)
  dec_pad = 1.0 - ref['decoder_mask'].astype(np.float32)
  with base_layer.JaxContext.new_context():
    return model.apply({'params': params}, ref['encoder_ids'], enc_pad, ref['decoder_ids'], dec_pad)


def test_converter_stacks_layers(models):
  _, flat_params, scan_model, scan_params = models
  flat = tree.flatten(flat_params)
  stacked = tree.flatten(scan_params)
  n_enc = scan_model.num_encoder_layers
  assert not any('x_layers_' in k for k in stacked)
  w = stacked['encoder/repeat/sub/self_attention/query/w']
  assert w.shape[0] == n_enc
  for i in range(n_enc):
    np.testing.assert_array_equal(w[i], flat[f'encoder/x_layers_{i}/self_attention/query/w'])
  # Outside the blocks nothing changes.
  np.testing.assert_array_equal(
    stacked['decoder/relative_bias/emb_var'], flat['decoder/relative_bias/emb_var']
  )
  # The two layouts convert into each other exactly.
  back = tree.unstack_layer_params(stacked)
  assert sorted(back) == sorted(flat)
  for k in flat:
    np.testing.assert_array_equal(back[k], flat[k])


def test_stack_rejects_gaps():
  with pytest.raises(ValueError, match='not 0..L-1'):
    tree.stack_layer_params({'encoder/x_layers_0/a': np.zeros(2), 'encoder/x_layers_2/a': 0})


def test_scanned_logits_match_hf(models, ref):
  flat_model, flat_params, scan_model, scan_params = models
  got = jax.jit(lambda p: _logits(scan_model, p, ref))(scan_params)
  want = jax.jit(lambda p: _logits(flat_model, p, ref))(flat_params)
  mask = ref['decoder_mask'][..., None] > 0
  _, chain = mt5_chains(hf_config(HF_DIR), ref['encoder_ids'].shape[1], ref['decoder_ids'].shape[1])
  assert_f32_close(got, ref['logits'], chain, implementations=1, where=mask)
  # Same math; XLA may fuse the scanned block differently (float32 rounding).
  assert_f32_close(got, want, chain)


def _greedy(model, params, enc_ids, enc_pad, steps):
  batch = enc_ids.shape[0]

  def method(mdl):
    def fprop_fn(m, ids, paddings):
      m.decode(m.encode(m.embed(enc_ids), enc_pad), enc_pad, ids, paddings)

    sampler = base_layer.instantiate(
      pax_fiddle.Config(sample_decode.DefaultNextTokenSampler, top_k=1)
    )
    return sample_decode.sample_decode(
      mdl,
      lambda m, ids, pos: m.extend_step(ids, pos),
      transform_state_fn=lambda m, fn: m.transform_decode_state(fn),
      lazy_broadcast_prefix_fn=None,
      next_token_sampler=sampler,
      prefix_ids=jnp.zeros((batch, 1), jnp.int32),
      prefix_paddings=jnp.zeros((batch, 1), jnp.float32),
      seq_len=steps + 1,
      fprop_fn=fprop_fn,
      num_samples=1,
      temperature=0.0,
      max_decode_steps=steps,
      eos_id=-1,  # never: decode every step, so every cache position is used
      prefix_lengths=jnp.ones((batch,), jnp.int32),
    )

  with base_layer.JaxContext.new_context(hparams=base_layer.JaxContext.HParams(do_eval=True)):
    out, cache = jax.jit(
      lambda p: model.apply(
        {'params': p},
        method=method,
        mutable=[DECODE_CACHE],
        rngs={base_layer.RANDOM: jax.random.PRNGKey(0)},
      )
    )(params)
  return np.asarray(out.output_ids), np.asarray(out.logprobs), cache[DECODE_CACHE]


@pytest.mark.parametrize('unroll_in_decode', [True, False])
def test_scanned_greedy_decode_matches(models, ref, unroll_in_decode):
  flat_model, flat_params, _, scan_params = models
  cfg = mt5_config_from_hf(HF_DIR, scan=True)
  for stack in (cfg.encoder_tpl, cfg.decoder_tpl):
    stack.unroll_in_decode = unroll_in_decode
  scan_model = base_layer.instantiate(cfg)
  enc_pad = 1.0 - ref['generate_input_mask'].astype(np.float32)
  ids = ref['generate_input_ids']
  steps = ref['generate_ids'].shape[1] - 1
  want_ids, want_lp, _ = _greedy(flat_model, flat_params, ids, enc_pad, steps)
  got_ids, got_lp, cache = _greedy(scan_model, scan_params, ids, enc_pad, steps)
  np.testing.assert_array_equal(got_ids, want_ids)
  _, chain = mt5_chains(hf_config(HF_DIR), ids.shape[1], steps)
  # + log-sum-exp over the vocabulary; |log-prob| >= |logit error scale| keeps it conservative.
  assert_f32_close(got_lp, want_lp, chain + ref['logits'].shape[-1])
  layers = cache['decoder']['repeat']['sub']
  n, b = scan_model.num_decoder_layers, ids.shape[0]
  if unroll_in_decode:  # per-layer value caches [B, N, seq_len, H]
    assert sorted(layers) == [f'layer{i}' for i in range(n)]
    shape = layers['layer0']['self_attention']['value_state'].shape
    assert (shape[0], shape[2]) == (b, steps + 1)
  else:  # stacked over layers: [L, B, N, seq_len, H]
    shape = layers['self_attention']['value_state'].shape
    assert (shape[0], shape[1], shape[3]) == (n, b, steps + 1)
