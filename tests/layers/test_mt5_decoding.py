"""mT5 decoding: KV-cached extend_step vs HF generate and full recomputation, praxis decoders."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from praxis import (
  base_layer,
  beam_search,
  decoder_hparams,
  decoder_utils,
  pax_fiddle,
  sample_decode,
)

from pali_pax.core import jax_compat
from tests.numerics import assert_f32_close, hf_config, mt5_chains
from tests.paths import MT5_HF as HF_DIR

# Fixtures `ref` (HF reference outputs) and `tiny` (the converted HF model): conftest.py.
DECODE_CACHE = base_layer.DECODE_CACHE
EOS = 1


def apply(model, variables, *args, method, mutable=False):
  with base_layer.JaxContext.new_context():
    return model.apply(variables, *args, method=method, mutable=mutable)


def encode_fn(mdl, ids, paddings):
  return mdl.encode(mdl.embed(ids), paddings)


def _init_cache(model, variables, enc_ids, enc_pad, length):
  batch = enc_ids.shape[0]
  zeros = jnp.zeros((batch, length), jnp.int32)

  def fprop(mdl):
    encoded = encode_fn(mdl, enc_ids, enc_pad)
    return mdl.decode(encoded, enc_pad, zeros, jnp.zeros((batch, length), jnp.float32))

  _, cache = apply(model, variables, method=fprop, mutable=[DECODE_CACHE])
  return cache[DECODE_CACHE]


_STEP_FNS = {}


def _step_fn(model):
  """A jitted extend_step per model (compiled once per cache/time_step shape)."""
  if id(model) not in _STEP_FNS:

    @jax.jit
    def step(params, cache, ids, time_step):
      logits, new = apply(
        model,
        {'params': params, DECODE_CACHE: cache},
        ids,
        time_step,
        method=model.extend_step,
        mutable=[DECODE_CACHE],
      )
      return logits, new[DECODE_CACHE]

    _STEP_FNS[id(model)] = step
  return _STEP_FNS[id(model)]


def test_greedy_decode_extend_step_matches_hf_generate(tiny, ref):
  model, variables = tiny
  enc_ids = ref['generate_input_ids']
  enc_pad = 1.0 - ref['generate_input_mask'].astype(np.float32)
  steps = ref['generate_ids'].shape[1] - 1
  cache = _init_cache(model, variables, enc_ids, enc_pad, steps)
  ids = jnp.zeros((enc_ids.shape[0],), jnp.int32)
  done = np.zeros(enc_ids.shape[0], bool)
  out = [np.asarray(ids)]
  for t in range(steps):
    logits, cache = _step_fn(model)(variables['params'], cache, ids, jnp.int32(t))
    nxt = np.where(done, 0, np.argmax(np.asarray(logits), -1))
    done |= nxt == EOS
    out.append(nxt)
    ids = jnp.asarray(nxt, jnp.int32)
  np.testing.assert_array_equal(np.stack(out, 1), ref['generate_ids'])


def test_cached_extend_step_equals_full_recomputation(tiny, ref):
  model, variables = tiny
  enc_ids = ref['encoder_ids']
  enc_pad = 1.0 - ref['encoder_mask'].astype(np.float32)
  dec_ids = ref['decoder_ids'][:, :9]
  batch, length = dec_ids.shape
  full = apply(
    model,
    variables,
    enc_ids,
    enc_pad,
    dec_ids,
    np.zeros((batch, length), np.float32),
    method=model.__call__,
  )
  cache = _init_cache(model, variables, enc_ids, enc_pad, length)
  row_cache = cache
  # The cross-attention K/V are computed once, by decode(): extend_step must not change them.
  cross_k = cache['decoder']['x_layers_0']['cross_attention']['key_state']
  _, chain = mt5_chains(hf_config(HF_DIR), enc_ids.shape[1], length)
  for t in range(length):
    logits, cache = _step_fn(model)(variables['params'], cache, dec_ids[:, t], jnp.int32(t))
    assert_f32_close(logits, full[:, t], chain, err_msg=f'step {t}')
    # Per-row positions (praxis' segment_pos) take the one-hot write path.
    pos = jnp.full((batch,), t, jnp.int32)
    row_logits, row_cache = _step_fn(model)(variables['params'], row_cache, dec_ids[:, t], pos)
    assert_f32_close(row_logits, logits, chain, err_msg=f'step {t}')
  np.testing.assert_array_equal(
    cache['decoder']['x_layers_0']['cross_attention']['key_state'], cross_k
  )


def test_transform_decode_state_time_axes(tiny, ref):
  model, variables = tiny
  enc_ids = ref['encoder_ids']
  enc_pad = 1.0 - ref['encoder_mask'].astype(np.float32)
  cache = _init_cache(model, variables, enc_ids, enc_pad, 3)

  def transform(mdl):
    mdl.transform_decode_state(decoder_utils.pad_state_fn(4))
    mdl.transform_decode_state(decoder_utils.batch_broadcast_state_fn(2))

  _, new = apply(
    model, {**variables, DECODE_CACHE: cache}, method=transform, mutable=[DECODE_CACHE]
  )
  layer = new[DECODE_CACHE]['decoder']['x_layers_1']
  batch, src = enc_ids.shape
  # Keys [B, N, H, L], values [B, N, L, H] (t5_attention.CACHE_AXES).
  assert layer['self_attention']['key_state'].shape == (2 * batch, 4, 8, 7)
  assert layer['self_attention']['value_state'].shape == (2 * batch, 4, 7, 8)
  assert layer['cross_attention']['key_state'].shape == (2 * batch, 4, 8, src)
  assert layer['cross_attention']['value_state'].shape == (2 * batch, 4, src, 8)
  assert new[DECODE_CACHE]['decoder']['cross_paddings'].shape == (2 * batch, src)


# ------------------------------------------------------------------ praxis decoders


def _praxis_decode(model, variables, enc_ids, enc_pad, run):
  batch = enc_ids.shape[0]

  def fprop_fn(mdl, ids, paddings):
    mdl.decode(encode_fn(mdl, enc_ids, enc_pad), enc_pad, ids, paddings)

  def extend_step_fn(mdl, ids, segment_pos):
    return mdl.extend_step(ids, segment_pos)

  def transform_fn(mdl, fn):
    mdl.transform_decode_state(fn)

  prefix = jnp.zeros((batch, 1), jnp.int32)
  prefix_pad = jnp.zeros((batch, 1), jnp.float32)

  def method(mdl):
    return run(mdl, fprop_fn, extend_step_fn, transform_fn, prefix, prefix_pad)

  with base_layer.JaxContext.new_context(hparams=base_layer.JaxContext.HParams(do_eval=True)):
    out, _ = jax.jit(
      lambda v: model.apply(
        v, method=method, mutable=[DECODE_CACHE], rngs={base_layer.RANDOM: jax.random.PRNGKey(0)}
      )
    )(variables)
  return jax.tree_util.tree_map(np.asarray, out)


def test_praxis_sample_decode_top1_matches_hf_generate(tiny, ref):
  model, variables = tiny
  steps = ref['generate_ids'].shape[1] - 1

  def run(mdl, fprop_fn, extend_step_fn, transform_fn, prefix, prefix_pad):
    sampler = base_layer.instantiate(
      pax_fiddle.Config(sample_decode.DefaultNextTokenSampler, top_k=1)
    )
    return sample_decode.sample_decode(
      mdl,
      extend_step_fn,
      transform_state_fn=transform_fn,
      lazy_broadcast_prefix_fn=None,
      next_token_sampler=sampler,
      prefix_ids=prefix,
      prefix_paddings=prefix_pad,
      seq_len=steps + 1,
      fprop_fn=fprop_fn,
      num_samples=1,
      temperature=0.0,
      max_decode_steps=steps,
      eos_id=EOS,
      # Without prefix_lengths praxis counts the start token as a decode step.
      prefix_lengths=jnp.ones((prefix.shape[0],), jnp.int32),
    )

  enc_pad = 1.0 - ref['generate_input_mask'].astype(np.float32)
  result = _praxis_decode(model, variables, ref['generate_input_ids'], enc_pad, run)
  out = result.output_ids.reshape(ref['generate_ids'].shape)
  np.testing.assert_array_equal(out, ref['generate_ids'])


def test_praxis_beam_search_uses_reordered_caches(tiny, ref):
  # Runs praxis beam search directly (not through pali_pax.model), so it applies the shim.
  jax_compat.allow_reshape_newshape()
  model, variables = tiny
  enc_ids = ref['generate_input_ids'][:3]
  enc_pad = 1.0 - ref['generate_input_mask'][:3].astype(np.float32)
  steps = 6

  def run(mdl, fprop_fn, extend_step_fn, transform_fn, prefix, prefix_pad):
    hp = decoder_hparams.BeamSearchHParams(
      beam_size=3, max_decode_steps=steps, eos_id=EOS, length_norm_alpha=0.0, seqlen=steps + 1
    )
    return beam_search.beam_search(
      mdl, extend_step_fn, fprop_fn, transform_fn, prefix, prefix_pad, hp
    )

  result = _praxis_decode(model, variables, enc_ids, enc_pad, run)
  ids, logprobs, lengths = result.output_ids, result.logprobs, result.decode_lengths
  assert ids.shape[:2] == (3, 3)
  # Every returned hypothesis must score, token by token, what teacher forcing gives:
  # wrong cache reordering between beams would break this.
  flat = ids.reshape(9, -1)
  enc_rep = np.repeat(enc_ids, 3, axis=0)
  pad_rep = np.repeat(enc_pad, 3, axis=0)
  teacher = apply(
    model,
    variables,
    enc_rep,
    pad_rep,
    flat[:, :-1],
    np.zeros(flat[:, :-1].shape, np.float32),
    method=model.__call__,
  )
  teacher_lp = np.take_along_axis(jax.nn.log_softmax(teacher), flat[:, 1:, None], -1)[..., 0]
  _, chain = mt5_chains(hf_config(HF_DIR), enc_ids.shape[1], flat.shape[1])
  chain += teacher.shape[-1]  # log-sum-exp over the vocabulary
  scale = float(np.abs(teacher).max())  # log_softmax's error is the logits' error
  for row in range(9):
    n = int(lengths.reshape(9)[row]) - 1  # generated tokens, eos included
    assert flat[row, n] == EOS
    assert_f32_close(
      logprobs.reshape(9, -1)[row, 1 : n + 1], teacher_lp[row, :n], chain, scale=scale
    )
  # The best hypothesis is at least as likely as the best greedy path ending in eos.
  scores = teacher_lp * (np.arange(teacher_lp.shape[1])[None] < (lengths.reshape(9, 1) - 1))
  assert np.all(
    scores.sum(1).reshape(3, 3)[:, 0] >= scores.sum(1).reshape(3, 3)[:, 1:].max(1) - 1e-4
  )


def test_extend_step_beyond_cache_raises(tiny, ref):
  model, variables = tiny
  enc_pad = 1.0 - ref['encoder_mask'].astype(np.float32)
  cache = _init_cache(model, variables, ref['encoder_ids'], enc_pad, 4)
  ids = jnp.zeros((enc_pad.shape[0],), jnp.int32)
  with pytest.raises(ValueError, match='beyond the decode cache length 4'):
    apply(
      model,
      {**variables, DECODE_CACHE: cache},
      ids,
      4,
      method=model.extend_step,
      mutable=[DECODE_CACHE],
    )
