"""mT5 (T5.1.1 architecture) encoder-decoder as a Praxis layer.

Numerically equal to Hugging Face `MT5ForConditionalGeneration`: shared token
embedding for encoder and decoder inputs (not scaled), T5 stacks
(`layers/t5_stack.py`), untied output projection without the d_model**-0.5
rescaling (HF only rescales when `tie_word_embeddings` is set, which mT5 is
not).

Parameter tree (`params` collection), V vocabulary, D model width:

    token_emb/emb_var                 [V, D]
    encoder/...                       T5Stack (see t5_stack.py)
    decoder/...                       T5Stack with cross-attention
    softmax/logits_ffn/linear/w       [D, V]   (lm_head, transposed)

Decoding (praxis convention): call `decode(...)` with the `DECODE_CACHE`
('decoder_cache') collection mutable, e.g. with decoder ids of length
max_decode_steps (all zeros) or with a 1-token prefix that praxis' decoders
then pad via `transform_decode_state(pad_state_fn(...))`. This stores the
self-attention K/V of the given positions, the cross-attention K/V of the
encoder output (computed once) and the encoder paddings. Then
`extend_step(ids, t)` for t = 0, 1, ... writes position t of the self-attention
caches and attends to positions <= t only.
"""

import jax
import jax.numpy as jnp
import numpy as np
from praxis import base_layer, pax_fiddle, pytypes
from praxis.layers import embedding_softmax

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors
from pali_pax.layers import relative_position, t5_stack

JTensor = pytypes.JTensor
LayerTpl = pax_fiddle.Config[base_layer.BaseLayer]
template_field = base_layer.template_field


def check_token_ids(ids: JTensor | np.ndarray, vocab_size: int, name: str = 'ids') -> None:
  """Raises ValueError when concrete `ids` fall outside [0, vocab_size).

  A no-op for traced values (inside jit), where the check cannot run; call it
  on the host-side batch in that case.
  """
  if isinstance(ids, jax.core.Tracer):
    return
  arr = np.asarray(ids)
  if not np.issubdtype(arr.dtype, np.integer):
    raise errors.InputValidationError(f'{name} must be integer token ids, got dtype {arr.dtype}')
  if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
    bad = arr[(arr < 0) | (arr >= vocab_size)]
    raise errors.InputValidationError(
      f'{name} contains token ids outside [0, {vocab_size}): e.g. {bad[:5].tolist()}'
    )


def validate_mt5_hparams(
  vocab_size: int,
  model_dims: int,
  num_encoder_layers: int,
  num_decoder_layers: int,
  num_heads: int,
  dim_per_head: int,
  hidden_dims: int,
  relative_attention_num_buckets: int,
  relative_attention_max_distance: int,
  dropout_prob: float,
) -> None:
  """Raises ValueError for an inconsistent mT5 configuration."""
  for field, value in (
    ('vocab_size', vocab_size),
    ('model_dims', model_dims),
    ('num_encoder_layers', num_encoder_layers),
    ('num_decoder_layers', num_decoder_layers),
    ('num_heads', num_heads),
    ('dim_per_head', dim_per_head),
    ('hidden_dims', hidden_dims),
  ):
    if not isinstance(value, (int, np.integer)) or value <= 0:
      raise errors.ConfigError(f'mT5 {field} must be a positive integer, got {value!r}')
  if num_heads > model_dims:
    raise errors.ConfigError(f'mT5 num_heads ({num_heads}) cannot exceed model_dims ({model_dims})')
  if not 0.0 <= dropout_prob < 1.0:
    raise errors.ConfigError(f'mT5 dropout_prob must be in [0, 1), got {dropout_prob}')
  relative_position.validate_buckets(
    relative_attention_num_buckets, relative_attention_max_distance
  )


class Mt5EncoderDecoder(base_layer.BaseLayer):
  """mT5 encoder-decoder with shared input embedding and untied lm_head.

  Attributes:
    vocab_size: vocabulary size V (250112 for mT5).
    model_dims: model width D.
    num_encoder_layers: encoder blocks.
    num_decoder_layers: decoder blocks.
    num_heads: attention heads N.
    dim_per_head: head width H (N * H may differ from D, e.g. mT5-small).
    hidden_dims: gated-GELU feed-forward width F.
    relative_attention_num_buckets: relative position buckets.
    relative_attention_max_distance: relative position max distance.
    layer_norm_epsilon: RMSNorm epsilon.
    dropout_prob: dropout rate everywhere HF applies `dropout_rate`.
    embedding_tpl: token embedding template (praxis `Embedding`).
    encoder_tpl: encoder stack template (`T5Stack`).
    decoder_tpl: decoder stack template (`T5Stack`).
    softmax_tpl: output projection template (praxis `FullSoftmax`, no bias).
  """

  vocab_size: int = batch_lib.MT5_VOCAB_SIZE
  model_dims: int = 512
  num_encoder_layers: int = 8
  num_decoder_layers: int = 8
  num_heads: int = 6
  dim_per_head: int = 64
  hidden_dims: int = 1024
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  layer_norm_epsilon: float = 1e-6
  dropout_prob: float = 0.0
  embedding_tpl: LayerTpl = template_field(embedding_softmax.Embedding)
  encoder_tpl: LayerTpl = template_field(t5_stack.T5Stack)
  decoder_tpl: LayerTpl = template_field(t5_stack.T5Stack)
  softmax_tpl: LayerTpl = template_field(embedding_softmax.FullSoftmax)

  def setup(self) -> None:
    validate_mt5_hparams(
      self.vocab_size,
      self.model_dims,
      self.num_encoder_layers,
      self.num_decoder_layers,
      self.num_heads,
      self.dim_per_head,
      self.hidden_dims,
      self.relative_attention_num_buckets,
      self.relative_attention_max_distance,
      self.dropout_prob,
    )
    self.create_child(
      'token_emb',
      self.embedding_tpl.clone().set(num_classes=self.vocab_size, input_dims=self.model_dims),
    )
    for name, tpl, num_layers, is_decoder in (
      ('encoder', self.encoder_tpl, self.num_encoder_layers, False),
      ('decoder', self.decoder_tpl, self.num_decoder_layers, True),
    ):
      stack_p = tpl.clone().set(
        model_dims=self.model_dims,
        num_layers=num_layers,
        num_heads=self.num_heads,
        dim_per_head=self.dim_per_head,
        hidden_dims=self.hidden_dims,
        is_decoder=is_decoder,
        relative_attention_num_buckets=self.relative_attention_num_buckets,
        relative_attention_max_distance=self.relative_attention_max_distance,
        layer_norm_epsilon=self.layer_norm_epsilon,
        dropout_prob=self.dropout_prob,
      )
      self.create_child(name, stack_p)
    softmax_p = self.softmax_tpl.clone().set(
      input_dims=self.model_dims, num_classes=self.vocab_size
    )
    softmax_p.feed_forward_tpl.has_bias = False
    self.create_child('softmax', softmax_p)

  def embed(self, ids: JTensor) -> JTensor:
    """Token embedding (shared by encoder and decoder inputs).

    Args:
      ids: int32 [B, T] (or [B]); checked against the vocabulary when concrete.

    Returns:
      [B, T, D] (or [B, D]).
    """
    check_token_ids(ids, self.vocab_size)
    ids = jnp.asarray(ids)
    if ids.ndim == 1:
      # Through [B, 1] so the embedding's [B, T, D] output sharding applies.
      return self.token_emb.emb_lookup(ids[:, None])[:, 0]
    return self.token_emb.emb_lookup(ids)

  def encode(self, input_embs: JTensor, input_paddings: JTensor) -> JTensor:
    """Runs the encoder.

    Args:
      input_embs: [B, S, D] (embedded prompt, possibly with image tokens).
      input_paddings: [B, S], 1.0 = padding.

    Returns:
      [B, S, D] after the encoder's final norm.
    """
    return self.encoder(input_embs, input_paddings)

  def decode(
    self,
    encoder_output: JTensor,
    encoder_paddings: JTensor,
    decoder_ids: JTensor,
    decoder_paddings: JTensor,
  ) -> JTensor:
    """Teacher-forced decoder; fills the decode caches when mutable.

    Args:
      encoder_output: [B, S, D].
      encoder_paddings: [B, S], 1.0 = padding.
      decoder_ids: int32 [B, T], targets shifted right (start id 0).
      decoder_paddings: [B, T], 1.0 = padding.

    Returns:
      float32 logits [B, T, V].
    """
    x = self.decoder(self.embed(decoder_ids), decoder_paddings, encoder_output, encoder_paddings)
    return self.softmax.get_logits(x).astype(jnp.float32)

  def extend_step(self, ids: JTensor, time_step: JTensor) -> JTensor:
    """One cached decoding step.

    Args:
      ids: int32 [B], the decoder input at position `time_step`.
      time_step: int scalar (or [B], e.g. praxis' `segment_pos`).

    Returns:
      float32 logits [B, V] for the next position.
    """
    x = self.decoder.extend_step(self.embed(ids), time_step=time_step)
    return self.softmax.get_logits(x).astype(jnp.float32)

  def transform_decode_state(self, transform_fn: base_layer.DecodeStateTransformFn) -> None:
    """Applies praxis' `transform_fn(state, batch_dim, time_dim)` to every cache.

    Self-attention K/V get their time axis (`t5_attention.CACHE_TIME_DIM`);
    cross-attention K/V and the encoder paddings get time_dim=-1 (no decoder
    time axis).
    """
    self.decoder.transform_decode_state(transform_fn)

  def __call__(
    self,
    input_ids: JTensor,
    input_paddings: JTensor,
    decoder_ids: JTensor,
    decoder_paddings: JTensor,
  ) -> JTensor:
    """Text-only forward pass: [B, S] ids, [B, T] decoder ids -> logits [B, T, V]."""
    encoded = self.encode(self.embed(input_ids), input_paddings)
    return self.decode(encoded, input_paddings, decoder_ids, decoder_paddings)
