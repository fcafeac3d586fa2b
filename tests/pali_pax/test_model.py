"""PaliModel: fusion semantics, frozen ViT, loss, decoding and scoring."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from praxis import base_layer, decoder_hparams, py_utils

from pali_pax.core import batch as batch_lib
from pali_pax.fiddle_configs import pali
from tests.numerics import assert_f32_close, pali_tiny_chain

NestedMap = py_utils.NestedMap
VOCAB = 64


def _cfg(freeze_vit=False):
  cfg = pali.pali_config('tiny', image_size=28, vocab_size=VOCAB, freeze_vit=freeze_vit)
  cfg.vit_tpl.patch_size = 7
  return cfg


def _batch():
  rng = np.random.default_rng(0)
  return batch_lib.make_batch(
    [[5, 9, 7, 1, 0], [4, 4, 1], [8, 3, 2, 6, 1]],
    [[5, 6, 7, 8, 9, 1], [3, 4, 1], [10, 1]],
    images=rng.uniform(-1, 1, (3, 28, 28, 3)),
    has_image=[1.0, 0.0, 1.0],
    target_len=6,
  )


def _ctx():
  return base_layer.JaxContext.new_context(hparams=base_layer.JaxContext.HParams(do_eval=True))


@pytest.fixture(scope='module')
def model_and_vars():
  model = base_layer.instantiate(_cfg())
  with _ctx():
    variables = model.init(
      {'params': jax.random.PRNGKey(0), 'random': jax.random.PRNGKey(1)},
      _batch(),
      method=model.compute_predictions,
    )
  return model, variables


def _apply(model, variables, *args, method, **kw):
  with _ctx():
    return model.apply(variables, *args, method=getattr(model, method), **kw)


def test_text_only_example_equals_plain_mt5(model_and_vars):
  model, variables = model_and_vars
  batch = _batch()
  logits = _apply(model, variables, batch, method='compute_predictions').logits
  plain = base_layer.instantiate(_cfg().mt5_tpl)
  ids = batch.encoder_input_tokens[1:2]
  with _ctx():
    ref = plain.apply(
      {'params': variables['params']['mt5']},
      ids,
      (ids == 0).astype(jnp.float32),
      batch.decoder_input_tokens[1:2],
      jnp.zeros((1, 6), jnp.float32),
    )
  # Text-only row: the image tokens are padding, so only mT5's chain counts.
  assert_f32_close(logits[1:2, :3], ref[:, :3], pali_tiny_chain(7, 28, 5, 6))


def test_image_changes_only_examples_that_have_one(model_and_vars):
  model, variables = model_and_vars
  batch = _batch()
  base = _apply(model, variables, batch, method='compute_predictions').logits
  batch.image = batch.image[::-1]  # new pixels for every row
  moved = _apply(model, variables, batch, method='compute_predictions').logits
  diff = np.abs(np.asarray(base - moved)).max(axis=(1, 2))
  assert diff[0] > 1e-3 and diff[2] > 1e-3
  assert diff[1] < 1e-6  # the text-only row never sees its image


def test_encoder_input_is_visual_tokens_then_prompt(model_and_vars):
  model, variables = model_and_vars
  batch = _batch()
  out, paddings = _apply(model, variables, batch, method='encode')
  n = (28 // 7) ** 2
  assert out.shape == (3, n + 5, model.mt5_tpl.model_dims)
  np.testing.assert_array_equal(paddings[1, :n], 1.0)  # text-only: visual slots padded
  np.testing.assert_array_equal(paddings[0, :n], 0.0)
  np.testing.assert_array_equal(paddings[:, n:], np.asarray(batch.encoder_input_tokens == 0))


@pytest.mark.parametrize('freeze', [True, False])
def test_freeze_vit_stops_gradients(model_and_vars, freeze):
  _, variables = model_and_vars
  model = base_layer.instantiate(_cfg(freeze_vit=freeze))
  batch = _batch()

  def loss(params):
    with _ctx():
      preds = model.apply({'params': params}, batch, method=model.compute_predictions)
      metrics, _ = model.apply({'params': params}, preds, batch, method=model.compute_loss)
    return metrics.total_loss[0]

  grads = jax.jit(jax.grad(loss))(variables['params'])
  vit_norm = sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grads['vit']))
  proj_norm = sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grads['fusion']))
  assert proj_norm > 0
  assert (vit_norm == 0) == freeze


@pytest.mark.parametrize('per_example', [False, True])
def test_loss_averages_tokens_or_examples(model_and_vars, per_example):
  """Targets of 5, 2 and 1 tokens (+ EOS): per token, or each example's mean counts equally."""
  _, variables = model_and_vars
  cfg = _cfg()
  cfg.loss_per_example = per_example
  model = base_layer.instantiate(cfg)
  batch = _batch()
  logits = _apply(model, variables, batch, method='compute_predictions').logits
  metrics, _ = _apply(model, variables, NestedMap(logits=logits), batch, method='compute_loss')
  nll = -np.take_along_axis(
    np.asarray(jax.nn.log_softmax(logits, -1)),
    np.asarray(batch.decoder_target_tokens)[..., None],
    -1,
  )[..., 0]
  w = np.asarray(batch.decoder_loss_weights)
  if per_example:
    expected, weight = np.mean((nll * w).sum(-1) / w.sum(-1)), 3.0
  else:
    expected, weight = (nll * w).sum() / w.sum(), w.sum()
  loss, loss_weight = metrics.total_loss
  assert_f32_close(loss, expected, chain=VOCAB + 8)  # softmax over VOCAB, sums over 6 tokens
  assert float(loss_weight) == weight


def test_score_is_sum_of_target_log_probs(model_and_vars):
  model, variables = model_and_vars
  batch = _batch()
  scores = _apply(model, variables, batch, method='score')
  logits = _apply(model, variables, batch, method='compute_predictions').logits
  logp = jax.nn.log_softmax(logits, -1)
  picked = jnp.take_along_axis(logp, batch.decoder_target_tokens[..., None], -1)[..., 0]
  np.testing.assert_allclose(scores, jnp.sum(picked * batch.decoder_loss_weights, -1), rtol=1e-5)


def _decoder(model, params):
  """Compiled decode (variables, PRNG key) -> praxis DecodeOut; eager decoding is far slower."""

  def run(v, key):
    (_, result, _), _ = _apply(
      model,
      v,
      _batch(),
      params,
      method='decode_with_params',
      mutable=[base_layer.DECODE_CACHE],
      rngs={'random': key},
    )
    return result

  return jax.jit(run)


def _decode(model, variables, params, seed=3):
  return _decoder(model, params)(variables, jax.random.PRNGKey(seed))


def _greedy_by_recomputation(model, variables, steps):
  """Greedy ids [3, steps + 1] by a full forward per token, no cache.

  The decoder is causal, so the logits at position i see ids[:, :i + 1] only: one
  compiled forward over the full length serves every step (the zeros after i
  never reach position i).
  """
  batch = _batch()
  fwd = jax.jit(lambda v, b: _apply(model, v, b, method='compute_predictions').logits)
  ids = np.zeros((3, steps + 1), np.int32)
  for i in range(steps):
    b = NestedMap(batch)
    b.decoder_input_tokens = jnp.asarray(ids)
    b.decoder_target_tokens = jnp.asarray(ids)
    b.decoder_loss_weights = jnp.ones(ids.shape, jnp.float32)
    ids[:, i + 1] = np.argmax(np.asarray(fwd(variables, b))[:, i], -1)
  return ids


def test_greedy_decode_equals_argmax_recomputation(model_and_vars):
  model, variables = model_and_vars
  params = decoder_hparams.GreedyDecoderHParams(seqlen=7, eos_id=1)
  result = _decode(model, variables, params)
  expected = _greedy_by_recomputation(model, variables, 6)
  got = np.asarray(result.output_ids[:, 0])
  for row, want in zip(got, expected, strict=True):
    stop = np.nonzero(want[1:] == 1)[0]
    n = stop[0] + 2 if stop.size else len(want)
    np.testing.assert_array_equal(row[:n], want[:n])


def test_beam_search_scores_match_teacher_forcing(model_and_vars):
  model, variables = model_and_vars
  params = decoder_hparams.BeamSearchHParams(seqlen=6, eos_id=1, beam_size=3, length_norm_alpha=0.0)
  result = _decode(model, variables, params)
  assert result.output_ids.shape == (3, 3, 6)
  # Score the best beam by teacher forcing: its summed log-prob is the beam's score.
  best = np.asarray(result.output_ids[:, 0])
  batch = _batch()
  tgt = np.concatenate([best[:, 1:], np.zeros((3, 1), np.int32)], 1)
  lengths = np.asarray(result.decode_lengths[:, 0]) - 1
  weights = (np.arange(tgt.shape[1])[None] < lengths[:, None]).astype(np.float32)
  batch.decoder_input_tokens = jnp.asarray(best)
  batch.decoder_target_tokens = jnp.asarray(tgt * weights.astype(np.int32))
  batch.decoder_loss_weights = jnp.asarray(weights)
  scores = _apply(model, variables, batch, method='score')
  # Summed log-probs of 6 tokens, each a log-softmax over the vocabulary of the logits.
  chain = pali_tiny_chain(7, 28, 5, 6) + VOCAB + 6
  logits = _apply(model, variables, batch, method='compute_predictions').logits
  assert_f32_close(result.scores[:, 0], scores, chain, scale=float(jnp.abs(logits).max()))


def test_sampling_is_seeded_and_within_top_k(model_and_vars):
  model, variables = model_and_vars
  k = 3
  params = decoder_hparams.SampleDecoderHParams(seqlen=6, eos_id=1, temperature=1.0, k=k)

  decode = _decoder(model, params)

  def sample(seed):
    return np.asarray(decode(variables, jax.random.PRNGKey(seed)).output_ids[:, 0])

  first, again, other = sample(3), sample(3), sample(4)
  np.testing.assert_array_equal(first, again)
  assert (first != other).any(), first
  # Each sampled token is among the k largest logits of its step, recomputed by
  # teacher forcing on the sampled prefix (start id 0 at position 0).
  batch = _batch()
  batch.decoder_input_tokens = jnp.asarray(first[:, :-1])
  batch.decoder_target_tokens = jnp.asarray(first[:, 1:])
  batch.decoder_loss_weights = jnp.ones(first[:, 1:].shape, jnp.float32)
  logits = np.asarray(_apply(model, variables, batch, method='compute_predictions').logits)
  kth = np.sort(logits, axis=-1)[..., -k]
  picked = np.take_along_axis(logits, first[:, 1:, None], -1)[..., 0]
  # Cached and teacher-forced logits agree to float32 rounding of their magnitude.
  tol = 1e-5 * float(np.abs(logits).max())
  for row in range(first.shape[0]):
    eos = np.nonzero(first[row, 1:] == 1)[0]
    n = eos[0] + 1 if eos.size else first.shape[1] - 1  # up to and including eos
    assert (picked[row, :n] >= kth[row, :n] - tol).all(), (row, first[row], picked[row], kth[row])
