"""PaliModel: the Pax model (ViT -> fusion -> mT5) with loss, decoding and scoring."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from praxis import (
  base_input,
  base_layer,
  base_model,
  beam_search,
  decoder_hparams,
  pax_fiddle,
  py_utils,
  pytypes,
  sample_decode,
)

from pali_pax import losses
from pali_pax.core import batch as batch_lib
from pali_pax.core import errors, jax_compat
from pali_pax.layers import fusion, mt5, vit

# praxis 1.4 beam search (decoder_utils.two_stage_topk) calls jnp.reshape(newshape=), gone in jax 0.8.
jax_compat.allow_reshape_newshape()

JTensor = pytypes.JTensor
NestedMap = py_utils.NestedMap
template_field = pax_fiddle.template_field
instance_field = base_layer.instance_field


class PaliModel(base_model.BaseModel):
  """PaLI: image-and-text to text.

  The input batch follows `pali_pax.core.batch`: `image` [B, H, W, 3] in [-1, 1],
  `has_image` [B], `encoder_input_tokens` [B, Ti], `decoder_input_tokens`,
  `decoder_target_tokens`, `decoder_loss_weights` [B, To].

  Attributes:
    vit_tpl: the image encoder (`VisionTransformer`); None gives a text-only
      model (plain mT5), which has no `vit` / `fusion` children.
    fusion_tpl: projection of the visual tokens and concatenation with the
      embedded prompt (`PaliFusion`); its widths are set from the other two.
    mt5_tpl: the mT5 encoder-decoder (`Mt5EncoderDecoder`).
    freeze_vit: stop gradients into the ViT, as in PaLI's main pretraining.
      Pair it with the learner's `bprop_variable_exclusion=['vit']` (done by
      the experiment configs) so the ViT also gets no optimizer state.
    label_smoothing: label smoothing of the target distribution.
    z_loss_weight: weight of the softmax normaliser penalty (log Z)^2.
    loss_per_example: train on the mean over examples of each example's token
      mean (`losses.token_xent(per_example=True)`) instead of the mean over all
      target tokens of the batch; for mixtures whose target lengths differ a lot.
    decoder_tpl: praxis decoder hparams: `GreedyDecoderHParams`,
      `BeamSearchHParams` (beam_size, length_norm_alpha) or
      `SampleDecoderHParams` (temperature, k). `seqlen` is the number of
      output tokens including the start token; eos is mT5's id 1.
  """

  vit_tpl: pax_fiddle.Config[vit.VisionTransformer] | None = template_field(vit.VisionTransformer)
  fusion_tpl: pax_fiddle.Config[fusion.PaliFusion] = template_field(fusion.PaliFusion)
  mt5_tpl: pax_fiddle.Config[mt5.Mt5EncoderDecoder] = template_field(mt5.Mt5EncoderDecoder)
  freeze_vit: bool = False
  label_smoothing: float = 0.0
  z_loss_weight: float = 0.0
  loss_per_example: bool = False
  decoder_tpl: decoder_hparams.DecoderHParams = instance_field(
    lambda: decoder_hparams.GreedyDecoderHParams(seqlen=33, eos_id=batch_lib.EOS_ID)
  )

  def setup(self) -> None:
    if self.vit_tpl is not None:
      self.create_child('vit', self.vit_tpl)
      fusion_p = self.fusion_tpl.clone()
      fusion_p.vit_dims = self.vit_tpl.width
      fusion_p.model_dims = self.mt5_tpl.model_dims
      self.create_child('fusion', fusion_p)
    self.create_child('mt5', self.mt5_tpl)

  # ---------------------------------------------------------------- encoder
  def image_features(self, images: JTensor) -> JTensor:
    """[B, H, W, 3] in [-1, 1] -> ViT tokens [B, N, vit width] (no projection)."""
    if self.vit_tpl is None:
      raise errors.InputValidationError(
        'this PaliModel has no ViT (vit_tpl=None): it accepts text only'
      )
    tokens = self.vit(images)
    return jax.lax.stop_gradient(tokens) if self.freeze_vit else tokens

  def encode(self, batch: NestedMap) -> tuple[JTensor, JTensor]:
    """Runs ViT, fusion and the mT5 encoder.

    Returns:
      (encoder output [B, N + Ti, D], encoder paddings [B, N + Ti]).
    """
    ids = batch.encoder_input_tokens
    paddings = (ids == batch_lib.PAD_ID).astype(jnp.float32)
    embs = self.mt5.embed(ids)
    if self.vit_tpl is not None:
      image_tokens = self.image_features(batch.image)
      embs, paddings = self.fusion(image_tokens, batch.has_image, embs, paddings)
    return self.mt5.encode(embs, paddings), paddings

  # ------------------------------------------------------------- training
  def compute_predictions(self, input_batch: NestedMap) -> NestedMap:
    """Teacher-forced logits [B, To, V] (float32)."""
    enc, enc_paddings = self.encode(input_batch)
    dec_ids = input_batch.decoder_input_tokens
    # T5's decoder input starts with pad id 0 as the start token, so padding is
    # read off the loss weights, not the ids.
    dec_paddings = 1.0 - input_batch.decoder_loss_weights.astype(jnp.float32)
    logits = self.mt5.decode(enc, enc_paddings, dec_ids, dec_paddings)
    return NestedMap(logits=logits)

  def compute_loss(
    self, predictions: NestedMap, input_batch: NestedMap
  ) -> tuple[NestedMap, NestedMap]:
    """Weighted token cross-entropy; returns (weighted scalars, per example).

    Rows with `eval_sample_weights` 0 (the padding paxml's eval input adds so every
    host runs the same number of batches: copies of real examples) get no weight,
    so eval metrics count each example of the split once.
    """
    weights = input_batch.decoder_loss_weights
    if 'eval_sample_weights' in input_batch:
      weights = weights * input_batch.eval_sample_weights[:, None].astype(weights.dtype)
    out = losses.token_xent(
      predictions.logits,
      input_batch.decoder_target_tokens,
      weights,
      label_smoothing=self.label_smoothing,
      z_loss_weight=self.z_loss_weight,
      per_example=self.loss_per_example,
    )
    weight = out.total_weight
    metrics = NestedMap(
      total_loss=(out.total_loss, out.loss_weight),
      avg_xent=(out.avg_xent, weight),
      z_loss=(out.avg_z_loss, weight),
      log_pplx=(
        jnp.sum(out.per_token_nll * weights) / jnp.maximum(weight, 1.0),
        weight,
      ),
      fraction_of_correct_next_step_preds=(out.accuracy, weight),
      num_predictions=(weight, jnp.array(1.0, jnp.float32)),
    )
    per_example = NestedMap(scores=out.per_sequence_logprob)
    return metrics, per_example

  def score(self, input_batch: NestedMap) -> JTensor:
    """Log-likelihood [B] of the given targets (PaLI's zero-shot classification)."""
    logits = self.compute_predictions(input_batch).logits
    out = losses.token_xent(
      logits, input_batch.decoder_target_tokens, input_batch.decoder_loss_weights
    )
    return out.per_sequence_logprob

  # ------------------------------------------------------------- decoding
  def decode(self, input_batch: NestedMap) -> tuple[NestedMap, NestedMap, NestedMap]:
    """Generates with `decoder_tpl` (greedy, beam search or sampling)."""
    return self.decode_with_params(input_batch, self.decoder_tpl)

  def decode_with_params(
    self, input_batch: NestedMap, params: decoder_hparams.DecoderHParams
  ) -> tuple[NestedMap, NestedMap, NestedMap]:
    """Same as `decode` with explicit decoder hparams.

    Returns:
      (weighted scalars, results with `output_ids` [B, S, L] (S samples or
      beams, L = params.seqlen, starting with the start id), `decode_lengths`
      [B, S], `logprobs`, clu metrics).
    """
    if params.seqlen <= 1:
      raise errors.ConfigError(
        f'decoder seqlen must be > 1 (start token + outputs), got {params.seqlen}'
      )
    batch_size = input_batch.encoder_input_tokens.shape[0]
    prefix_ids = jnp.full((batch_size, 1), batch_lib.DECODER_START_ID, jnp.int32)
    prefix_paddings = jnp.zeros((batch_size, 1), jnp.float32)

    def fprop_fn(mdl: 'PaliModel', ids: JTensor, paddings: JTensor) -> None:
      enc, enc_paddings = mdl.encode(input_batch)
      mdl.mt5.decode(enc, enc_paddings, ids, paddings)

    def extend_step_fn(mdl: 'PaliModel', ids: JTensor, segment_pos: JTensor) -> JTensor:
      return mdl.mt5.extend_step(ids, segment_pos)

    def transform_fn(mdl: 'PaliModel', transform: Any) -> None:
      mdl.mt5.transform_decode_state(transform)

    if isinstance(params, decoder_hparams.BeamSearchHParams):
      if params.max_decode_steps is None:  # praxis' beam search needs it explicitly
        params = dataclasses.replace(params, max_decode_steps=params.seqlen - 1)
      result = beam_search.beam_search(
        self, extend_step_fn, fprop_fn, transform_fn, prefix_ids, prefix_paddings, params
      )
    else:
      sampler_p = pax_fiddle.Config(sample_decode.DefaultNextTokenSampler, top_k=1)
      temperature, num_samples = 0.0, 1
      if isinstance(params, decoder_hparams.SampleDecoderHParams):
        sampler_p = params.next_token_sampler_tpl.clone()
        sampler_p.top_k = params.k
        sampler_p.top_p = params.p
        temperature, num_samples = params.temperature, params.num_samples
      result = sample_decode.sample_decode(
        self,
        extend_step_fn,
        transform_state_fn=transform_fn,
        lazy_broadcast_prefix_fn=None,
        next_token_sampler=base_layer.instantiate(sampler_p),
        prefix_ids=prefix_ids,
        prefix_paddings=prefix_paddings,
        seq_len=params.seqlen,
        fprop_fn=fprop_fn,
        num_samples=num_samples,
        temperature=temperature,
        max_decode_steps=params.max_decode_steps,
        eos_id=params.eos_id,
        sort_samples=num_samples > 1,
        # The start token is a given prefix, not a decoded step.
        prefix_lengths=jnp.ones((batch_size,), jnp.int32),
      )
    if result.output_ids.ndim == 2:
      result.output_ids = result.output_ids[:, None, :]
      result.decode_lengths = result.decode_lengths[:, None]
    result.update(input_batch)
    metrics = NestedMap(num_decoded=(jnp.array(batch_size, jnp.float32), jnp.array(1, jnp.float32)))
    return metrics, result, NestedMap()

  def process_decode_out(
    self, input_obj: base_input.BaseInput, decode_out: NestedMap
  ) -> tuple[NestedMap, list[tuple[str, dict[str, Any]]], NestedMap]:
    """Detokenises the best output of each example for seqio metrics.

    Keys are the seqio enumeration ids when the input provides them (paxml's
    SeqIOInput does), else the decoded prompt.
    """
    ids = np.asarray(decode_out.output_ids)[:, 0, 1:]  # drop the start token
    lengths = np.asarray(decode_out.decode_lengths)[:, 0] - 1
    outputs = input_obj.ids_to_strings(ids, lengths, key='tgt')
    prompts = _strings(input_obj, decode_out.encoder_input_tokens, 'src')
    targets = _strings(input_obj, decode_out.decoder_target_tokens, 'tgt')
    weights = decode_out.get('eval_sample_weights', np.ones(len(outputs)))
    rows = []
    for i, text in enumerate(outputs):
      if not weights[i]:
        continue
      row = {k: v[i] for k, v in decode_out.items() if k.startswith('_seqio')}
      key = py_utils.get_enumeration_id(row) or prompts[i]
      logging.info('PROMPT: %s | TARGET: %s | OUTPUT: %s', prompts[i], targets[i], text)
      rows.append(
        (
          key,
          {
            'prefix': prompts[i],
            'decoded_substr': text,
            'target': targets[i],
            'decode_length': int(lengths[i]),
          },
        )
      )
    # Weighted by the real rows, so the mean over batches is the mean over examples.
    real = np.asarray(weights) > 0
    count = np.float32(real.sum())
    mean = np.float32(lengths[real].mean()) if count else np.float32(0.0)
    metrics = NestedMap(decode_length=(mean, count))
    return metrics, rows, NestedMap()


def _strings(input_obj: base_input.BaseInput, ids: Any, key: str) -> list[str]:
  ids = np.asarray(ids)
  lengths = np.sum(ids != batch_lib.PAD_ID, axis=1)
  return list(input_obj.ids_to_strings(ids, lengths, key=key))
