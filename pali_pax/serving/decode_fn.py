"""The served JAX computation: image + prompt ids -> greedy ids and their score, one function.

`greedy_fn(model, steps)` is a pure function of (params, image, has_image, ids), the
same model call as `Predictor.generate_ids` (`PaliModel.decode_with_params` with
`GreedyDecoderHParams`, KV-cached `extend_step`), so that jax2tf can serialize it as
one program (`pali_pax.serving.saved_model`) and a server can jit it per bucket.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from praxis import base_layer, decoder_hparams, py_utils

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors
from pali_pax.serving import int8

NestedMap = py_utils.NestedMap

DecodeFn = Callable[[Any, jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def check_settings(max_decode_steps: int, beam_size: int) -> None:
  """ConfigError unless the served program can run these settings (greedy, >= 1 step)."""
  if beam_size != 1:
    raise errors.ConfigError(
      f'beam_size {beam_size}: the served program decodes greedily only (beam_size 1); '
      'use Predictor.generate_ids(beam_size=K) in Python for beam search'
    )
  if max_decode_steps < 1:
    raise errors.ConfigError(f'max_decode_steps must be >= 1, got {max_decode_steps}')


def decoder_params(max_decode_steps: int, beam_size: int = 1) -> Any:
  """praxis decoder hparams: greedy (beam_size 1) or beam search without length norm."""
  if beam_size > 1:
    return decoder_hparams.BeamSearchHParams(
      seqlen=max_decode_steps + 1,
      eos_id=batch_lib.EOS_ID,
      beam_size=beam_size,
      length_norm_alpha=0.0,
    )
  return decoder_hparams.GreedyDecoderHParams(seqlen=max_decode_steps + 1, eos_id=batch_lib.EOS_ID)


def run_decode(model: Any, params: Any, batch: NestedMap, hparams: Any) -> NestedMap:
  """`PaliModel.decode_with_params` in eval mode, KV-cached; params may be int8-quantized.

  The one decode call of the Predictor and the served program; returns praxis'
  decoder result (`output_ids` / `logprobs` [B, beams, 1 + steps], start token first).
  """
  ctx = base_layer.JaxContext.HParams(do_eval=True)
  with base_layer.JaxContext.new_context(hparams=ctx):
    (_, result, _), _ = model.apply(
      {'params': int8.dequantize_params(params)},
      batch,
      method=model.decode_with_params,
      params=hparams,
      mutable=[base_layer.DECODE_CACHE],
      rngs={base_layer.RANDOM: jax.random.PRNGKey(0)},
    )
  return result


def greedy_fn(model: Any, max_decode_steps: int, beam_size: int = 1) -> DecodeFn:
  """`fn(params, image, has_image, ids) -> (out_ids, score)`, greedy, KV-cached.

  Args:
    model: an instantiated `PaliModel`.
    max_decode_steps: tokens generated after the start id.
    beam_size: only 1: praxis' beam search keeps per-beam caches whose shapes the
      exported loop would have to carry; refused with a ConfigError.

  The returned function takes:
    params: the model's `params` collection; int8-quantized trees
      (`int8.quantize_params`) are dequantized inside the function.
    image: float32 [B, H, W, 3] in [-1, 1]; has_image: float32 [B] (0 = text only);
    ids: int32 [B, T] prompt ids ending with eos, PAD_ID after.
  and returns out_ids int32 [B, max_decode_steps] (eos 1, then PAD_ID 0) and score
  float32 [B], the sum of the chosen tokens' log-probabilities up to and with eos.
  """
  check_settings(max_decode_steps, beam_size)
  hparams = decoder_params(max_decode_steps)

  def fn(params: Any, image: jax.Array, has_image: jax.Array, ids: jax.Array) -> Any:
    batch = NestedMap(image=image, has_image=has_image, encoder_input_tokens=ids)
    result = run_decode(model, params, batch, hparams)
    out = result.output_ids[:, 0, 1:].astype(jnp.int32)
    # praxis marks the start token and the positions after eos with log-prob 1.0.
    logprobs = result.logprobs[:, 0, 1:]
    score = jnp.sum(jnp.where(logprobs >= 1.0, 0.0, logprobs), axis=-1)
    return out, score.astype(jnp.float32)

  return fn
