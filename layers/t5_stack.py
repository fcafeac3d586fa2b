"""T5.1.1 / mT5 transformer blocks and stacks (encoder or decoder).

A block is pre-norm: `x + Attn(RmsNorm(x))`, then (decoder only)
`x + CrossAttn(RmsNorm(x), encoder)`, then `x + FF(RmsNorm(x))` with the
gated-GELU feed-forward `wo(gelu_tanh(wi_0 x) * wi_1 x)`. RMSNorm is praxis
`RmsNorm` with `direct_scale` (x * rsqrt(mean(x^2) + eps) * scale) and the
feed-forward is praxis `TransformerFeedForward` (gated, no bias), which computes
exactly that (as `GatedFeedForward`, which can also run wi_0 and wi_1 as one
matmul). A stack computes the relative position bias and the masks once, runs its
blocks and ends with a final RMSNorm.

Parameter tree of a stack (D model, N heads, H head width, F hidden, K buckets):

    relative_bias/emb_var                                  [K, N]
    x_layers_{i}/self_attention_norm/scale                 [D]
    x_layers_{i}/self_attention/{query,key,value,post}/w   [D, N, H]
    x_layers_{i}/cross_attention_norm/scale                [D]        (decoder)
    x_layers_{i}/cross_attention/{query,key,value,post}/w  [D, N, H]  (decoder)
    x_layers_{i}/ff/layer_norm/scale                       [D]
    x_layers_{i}/ff/ffn_layer1_gate/linear/w               [D, F]     (wi_0, GELU side)
    x_layers_{i}/ff/ffn_layer1/linear/w                    [D, F]     (wi_1, linear side)
    x_layers_{i}/ff/ffn_layer2/linear/w                    [F, D]     (wo)
    final_norm/scale                                       [D]

With `scan=True` (opt-in) the blocks run under praxis `repeats.Repeat`: one
compiled block, rematerialised per `checkpoint_policy`, and every
`x_layers_{i}/<path>` above becomes one `repeat/sub/<path>` leaf with a
leading [num_layers] axis (`pali_pax.core.tree.stack_layer_params` /
`unstack_layer_params` convert between the two layouts; the checkpoint
converters do it for you).
Decoding caches then carry the same leading layer axis.
"""

import jax
import jax.numpy as jnp
from praxis import base_layer, pax_fiddle, pytypes
from praxis.layers import activations, normalizations, repeats, stochastics

from pali_pax.core import errors
from pali_pax.layers import gated_feed_forward, relative_position, t5_attention

JTensor = pytypes.JTensor
SplitDimsMapping = pytypes.SplitDimsMapping
LayerTpl = pax_fiddle.Config[base_layer.BaseLayer]
template_field = base_layer.template_field
DECODE_CACHE = base_layer.DECODE_CACHE

CROSS_PADDINGS = 'cross_paddings'
AutodiffCheckpointType = repeats.AutodiffCheckpointType


class T5Block(base_layer.BaseLayer):
  """One pre-norm T5.1.1 block.

  Attributes:
    model_dims: model width D.
    num_heads: attention heads N.
    dim_per_head: head width H.
    hidden_dims: feed-forward width F.
    use_cross_attention: add encoder-decoder attention (decoder blocks).
    decode_cache: attention layers keep K/V caches (decoder blocks).
    layer_norm_epsilon: RMSNorm epsilon.
    dropout_prob: dropout on attention probabilities, residual branches and
      inside the feed-forward (HF `dropout_rate`).
    norm_tpl: RMSNorm template.
    attention_tpl: attention template (`T5Attention`).
    ff_tpl: feed-forward template (praxis `TransformerFeedForward`; by default
      `GatedFeedForward`, which can run wi_0 and wi_1 as one matmul).
    dropout_tpl: residual dropout template.
  """

  model_dims: int = 0
  num_heads: int = 0
  dim_per_head: int = 0
  hidden_dims: int = 0
  use_cross_attention: bool = False
  decode_cache: bool = False
  layer_norm_epsilon: float = 1e-6
  dropout_prob: float = 0.0
  norm_tpl: LayerTpl = template_field(normalizations.RmsNorm)
  attention_tpl: LayerTpl = template_field(t5_attention.T5Attention)
  ff_tpl: LayerTpl = template_field(gated_feed_forward.GatedFeedForward)
  dropout_tpl: LayerTpl = template_field(stochastics.Dropout)

  def setup(self) -> None:
    # Mean of squares in float32 whatever the fprop dtype, as HF does.
    norm_p = self.norm_tpl.clone().set(
      dim=self.model_dims,
      epsilon=self.layer_norm_epsilon,
      direct_scale=True,
      intermediate_dtype=jnp.float32,
    )

    def attention(is_cross: bool) -> LayerTpl:
      return self.attention_tpl.clone().set(
        input_dim=self.model_dims,
        num_heads=self.num_heads,
        dim_per_head=self.dim_per_head,
        atten_dropout_prob=self.dropout_prob,
        is_cross_attention=is_cross,
        decode_cache=self.decode_cache,
      )

    self.create_child('self_attention_norm', norm_p.clone())
    self.create_child('self_attention', attention(False))
    if self.use_cross_attention:
      self.create_child('cross_attention_norm', norm_p.clone())
      self.create_child('cross_attention', attention(True))
    ff_p = self.ff_tpl.clone().set(
      input_dims=self.model_dims,
      hidden_dims=self.hidden_dims,
      has_bias=False,
      use_gated_activation=True,
      activation_tpl=pax_fiddle.Config(activations.GELU, approximate=True),
      ln_tpl=norm_p.clone(),
      norm_policy='pre',
      add_skip_connection=True,
      residual_dropout_prob=self.dropout_prob,
      relu_dropout_prob=self.dropout_prob,
    )
    self.create_child('ff', ff_p)
    self.create_child(
      'residual_dropout', self.dropout_tpl.clone().set(keep_prob=1.0 - self.dropout_prob)
    )

  def __call__(
    self,
    inputs: JTensor,
    bias: JTensor,
    mask: JTensor,
    cross_inputs: JTensor | None = None,
    cross_mask: JTensor | None = None,
  ) -> JTensor:
    """Full-sequence block.

    Args:
      inputs: [B, T, D].
      bias: relative position bias [1, N, T, T].
      mask: bool self-attention mask [B|1, 1, T|1, T].
      cross_inputs: encoder output [B, S, D] (decoder blocks).
      cross_mask: bool cross-attention mask [B, 1, 1, S] (decoder blocks).

    Returns:
      [B, T, D].
    """
    x = inputs
    h = self.self_attention_norm(x)
    x = x + self.residual_dropout(self.self_attention(h, h, bias, mask))
    if self.use_cross_attention:
      h = self.cross_attention_norm(x)
      x = x + self.residual_dropout(self.cross_attention(h, cross_inputs, None, cross_mask))
    return self.ff(x)

  def extend_step(
    self,
    inputs: JTensor,
    *,
    time_step: JTensor,
    bias: JTensor,
    mask: JTensor,
    cross_mask: JTensor | None = None,
  ) -> JTensor:
    """One decoding step: [B, D] -> [B, D] (see `T5Attention.extend_step`)."""
    x = inputs
    h = self.self_attention_norm(x)
    att = self.self_attention.extend_step(h, time_step=time_step, bias=bias, mask=mask)
    x = x + self.residual_dropout(att)
    if self.use_cross_attention:
      h = self.cross_attention_norm(x)
      att = self.cross_attention.extend_step(h, time_step=time_step, mask=cross_mask)
      x = x + self.residual_dropout(att)
    return self.ff(x)

  def transform_decode_state(self, transform_fn: base_layer.DecodeStateTransformFn) -> None:
    """Transforms the K/V caches of both attention layers."""
    self.self_attention.transform_decode_state(transform_fn)
    if self.use_cross_attention:
      self.cross_attention.transform_decode_state(transform_fn)


class T5Stack(base_layer.BaseLayer):
  """mT5 encoder (bidirectional) or decoder (causal + cross-attention) stack.

  Attributes:
    model_dims: model width D.
    num_layers: number of blocks.
    num_heads: attention heads N.
    dim_per_head: head width H.
    hidden_dims: feed-forward width F.
    is_decoder: causal self-attention, cross-attention and KV caches.
    relative_attention_num_buckets: relative position buckets.
    relative_attention_max_distance: relative position max distance.
    layer_norm_epsilon: RMSNorm epsilon.
    dropout_prob: dropout rate (inputs, blocks, after the final norm).
    scan: run the blocks under praxis `Repeat` (one compiled block, params
      with a leading [num_layers] axis under `repeat/sub/`). Off by default:
      checkpoints and existing param trees use the per-layer `x_layers_{i}`.
    checkpoint_policy: rematerialisation policy of the scanned blocks (scan
      only); SAVE_NOTHING keeps one block's activations live in the backward
      pass instead of every layer's.
    unroll_in_decode: (scan only) run `extend_step` as an unrolled loop over
      per-layer caches instead of a scan over the stacked caches. Off (praxis'
      default): on CPU both decode at the same speed (docs/benchmarks.md).
    block_tpl: block template (`T5Block`).
    relative_bias_tpl: relative bias template (`RelativePositionBias`).
    norm_tpl: final RMSNorm template.
    dropout_tpl: dropout template.
  """

  model_dims: int = 0
  num_layers: int = 0
  num_heads: int = 0
  dim_per_head: int = 0
  hidden_dims: int = 0
  is_decoder: bool = False
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  layer_norm_epsilon: float = 1e-6
  dropout_prob: float = 0.0
  scan: bool = False
  checkpoint_policy: AutodiffCheckpointType = AutodiffCheckpointType.SAVE_NOTHING
  unroll_in_decode: bool = False
  block_tpl: LayerTpl = template_field(T5Block)
  relative_bias_tpl: LayerTpl = template_field(relative_position.RelativePositionBias)
  norm_tpl: LayerTpl = template_field(normalizations.RmsNorm)
  dropout_tpl: LayerTpl = template_field(stochastics.Dropout)

  class ActivationSharding(base_layer.BaseLayer.ActivationSharding):
    """Activation sharding.

    Attributes:
      bld: hidden states [B, T, D].
    """

    bld: SplitDimsMapping = None

  def setup(self) -> None:
    self.create_child(
      'relative_bias',
      self.relative_bias_tpl.clone().set(
        num_heads=self.num_heads,
        num_buckets=self.relative_attention_num_buckets,
        max_distance=self.relative_attention_max_distance,
        bidirectional=not self.is_decoder,
      ),
    )
    block_p = self.block_tpl.clone().set(
      model_dims=self.model_dims,
      num_heads=self.num_heads,
      dim_per_head=self.dim_per_head,
      hidden_dims=self.hidden_dims,
      use_cross_attention=self.is_decoder,
      decode_cache=self.is_decoder,
      layer_norm_epsilon=self.layer_norm_epsilon,
      dropout_prob=self.dropout_prob,
    )
    if self.scan:
      self.create_child(
        'repeat',
        pax_fiddle.Config(
          repeats.Repeat,
          sub_tpl=block_p,
          x_times=self.num_layers,
          checkpoint_policy=self.checkpoint_policy,
          unroll_in_decode=self.unroll_in_decode,
        ),
      )
    else:
      self.create_children('x_layers', [block_p.clone() for _ in range(self.num_layers)])
    self.create_child(
      'final_norm',
      self.norm_tpl.clone().set(
        dim=self.model_dims,
        epsilon=self.layer_norm_epsilon,
        direct_scale=True,
        intermediate_dtype=jnp.float32,
      ),
    )
    dropout_p = self.dropout_tpl.clone().set(keep_prob=1.0 - self.dropout_prob)
    self.create_child('input_dropout', dropout_p.clone())
    self.create_child('output_dropout', dropout_p.clone())

  def _shard(self, x: JTensor) -> JTensor:
    spec = self.activation_split_dims_mapping.bld
    if spec is not None and x.ndim == 2:
      spec = [spec[0], spec[2]]
    return base_layer.maybe_shard(x, spec, self.mesh_axis_names)

  def __call__(
    self,
    inputs: JTensor,
    paddings: JTensor,
    cross_inputs: JTensor | None = None,
    cross_paddings: JTensor | None = None,
  ) -> JTensor:
    """Runs the stack over whole sequences.

    Args:
      inputs: embedded inputs [B, T, D].
      paddings: [B, T], 1.0 at padded positions (masked as keys).
      cross_inputs: encoder output [B, S, D] (decoder only).
      cross_paddings: encoder paddings [B, S] (decoder only).

    Returns:
      [B, T, D] after the final RMSNorm. A decoder with a mutable
      `DECODE_CACHE` also stores `cross_paddings` and every layer's K/V.
    """
    length = inputs.shape[1]
    positions = jnp.arange(length, dtype=jnp.int32)
    bias = self.relative_bias(positions, positions)  # [1, N, T, T]
    mask = (paddings == 0)[:, None, None, :]
    cross_mask = None
    if self.is_decoder:
      if cross_inputs is None or cross_paddings is None:
        raise errors.InputValidationError('a decoder stack needs cross_inputs and cross_paddings')
      mask = jnp.logical_and(mask, (positions[None, :] <= positions[:, None])[None, None])
      cross_mask = (cross_paddings == 0)[:, None, None, :]
      if self.is_mutable_collection(DECODE_CACHE):
        self.update_decode_state(CROSS_PADDINGS, cross_paddings)
    x = self._shard(self.input_dropout(inputs))
    if self.scan:
      x = self._shard(self.repeat(x, bias, mask, cross_inputs, cross_mask))
    else:
      for layer in self.x_layers:
        x = self._shard(layer(x, bias, mask, cross_inputs, cross_mask))
    return self._shard(self.output_dropout(self.final_norm(x)))

  def extend_step(self, inputs: JTensor, *, time_step: JTensor) -> JTensor:
    """One decoder step against the caches filled by `__call__`.

    Args:
      inputs: embedded ids of position `time_step`, [B, D].
      time_step: int scalar, or [B] (position per row).

    Returns:
      [B, D] after the final RMSNorm.
    """
    if not self.is_decoder:
      raise errors.InputValidationError('extend_step is only defined for the decoder stack')
    time_step = jnp.asarray(time_step, jnp.int32)
    cache_len = self._cache_length()
    if not isinstance(time_step, jax.core.Tracer) and int(jnp.max(time_step)) >= cache_len:
      # Under jit this cannot be checked (dynamic_update_slice would clamp).
      raise errors.InputValidationError(
        f'time_step {time_step} is beyond the decode cache length {cache_len}'
      )
    key_pos = jnp.arange(cache_len, dtype=jnp.int32)
    query_pos = time_step.reshape(-1, 1)  # [1|B, 1]
    bias = self.relative_bias(query_pos, key_pos)  # [1|B, N, 1, L]
    mask = (key_pos[None, :] <= query_pos)[:, None, None, :]  # [1|B, 1, 1, L]
    cross_mask = (self.get_decode_state(CROSS_PADDINGS) == 0)[:, None, None, :]
    x = self._shard(self.input_dropout(inputs))
    if self.scan:
      x = self.repeat.extend_step(
        x, time_step=time_step, bias=bias, mask=mask, cross_mask=cross_mask
      )
      x = self._shard(x)
    else:
      for layer in self.x_layers:
        x = layer.extend_step(x, time_step=time_step, bias=bias, mask=mask, cross_mask=cross_mask)
        x = self._shard(x)
    return self._shard(self.output_dropout(self.final_norm(x)))

  def _cache_length(self) -> int:
    """Length L of the self-attention K/V caches (filled by `__call__`)."""
    if not self.scan:
      return self.x_layers[0].self_attention.cache_length()
    # In the Repeat's scope: stacked [num_layers, ...] caches, or per-layer
    # ones under 'layer{i}' (unroll_in_decode).
    cache = self.variables[DECODE_CACHE]['repeat']['sub']
    time_dim = t5_attention.CACHE_TIME_DIM[t5_attention.VALUE_STATE]
    if 'layer0' in cache:
      return cache['layer0']['self_attention'][t5_attention.VALUE_STATE].shape[time_dim]
    return cache['self_attention'][t5_attention.VALUE_STATE].shape[1 + time_dim]

  def transform_decode_state(self, transform_fn: base_layer.DecodeStateTransformFn) -> None:
    """Transforms every cache of the stack (see `T5Attention`)."""
    if self.has_variable(DECODE_CACHE, CROSS_PADDINGS):
      self.update_decode_state(
        CROSS_PADDINGS, transform_fn(self.get_decode_state(CROSS_PADDINGS), 0, -1)
      )
    if self.scan:
      self.repeat.transform_decode_state(transform_fn)
      return
    for layer in self.x_layers:
      layer.transform_decode_state(transform_fn)
