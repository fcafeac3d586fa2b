"""T5 / mT5 multi-head attention with an externally supplied bias and a KV cache.

Differences from praxis `DotProductAttention` that make a separate layer
necessary: T5 neither scales queries nor logits, and the relative position bias
is computed once per stack and *added* to every layer's logits (praxis only has
a per-layer relative bias and a non-additive mask). The projections are praxis
`AttentionProjection`s without bias, so the weights have praxis' layout:

    query/w, key/w, value/w   [D, N, H]
    post/w                    [D, N, H]   (output projection, 'BTNH,DNH->BTD')

Decoding follows praxis conventions. When the `DECODE_CACHE` collection is
mutable, `__call__` stores the projected keys and values as `key_state` and
`value_state` [B, S, N, H]. For self-attention, `extend_step(x, time_step=t)`
then writes position t of that cache and attends over the whole cache (the
caller's mask hides positions > t). For cross-attention the cache holds the
encoder keys/values, computed once; `extend_step` only projects the query.
`transform_decode_state` passes `time_dim=1` for self-attention states and
`time_dim=-1` ("no time axis", as praxis' `pad_state_fn`/`slice_state_fn`
understand it) for cross-attention states, so padding/slicing leaves them alone
while batch broadcasts and beam reordering apply to both.
"""

import jax
import jax.numpy as jnp
from praxis import base_layer, pax_fiddle, py_utils, pytypes
from praxis.layers import attentions, stochastics

JTensor = pytypes.JTensor
SplitDimsMapping = pytypes.SplitDimsMapping
LayerTpl = pax_fiddle.Config[base_layer.BaseLayer]
template_field = base_layer.template_field
DECODE_CACHE = base_layer.DECODE_CACHE

KEY_STATE = 'key_state'
VALUE_STATE = 'value_state'


class T5Attention(base_layer.BaseLayer):
  """T5 attention: no query scaling, additive external bias, optional KV cache.

  Attributes:
    input_dim: model width D (queries, keys/values and output).
    num_heads: number of heads N.
    dim_per_head: width of each head H (N * H need not equal D).
    atten_dropout_prob: dropout on the attention probabilities.
    is_cross_attention: keys/values come from another sequence (the encoder);
      their cache has no decoder time axis and is never written by
      `extend_step`.
    decode_cache: store keys/values in `DECODE_CACHE` when it is mutable. Off
      for the encoder, whose attention is never extended step by step.
    proj_tpl: projection template (praxis `AttentionProjection`, no bias).
    dropout_tpl: dropout template for the attention probabilities.
  """

  input_dim: int = 0
  num_heads: int = 0
  dim_per_head: int = 0
  atten_dropout_prob: float = 0.0
  is_cross_attention: bool = False
  decode_cache: bool = True
  proj_tpl: LayerTpl = template_field(attentions.AttentionProjection)
  dropout_tpl: LayerTpl = template_field(stochastics.Dropout)

  class WeightSharding(base_layer.BaseLayer.WeightSharding):
    """Weight sharding.

    Attributes:
      proj: sharding of every projection weight [D, N, H] (heads over 'mdl').
    """

    proj: SplitDimsMapping = None

  class ActivationSharding(base_layer.BaseLayer.ActivationSharding):
    """Activation sharding.

    Attributes:
      blnh: projected queries/keys/values and caches [B, T, N, H].
      bnts: attention logits and probabilities [B, N, T, S].
      bld: output [B, T, D].
    """

    blnh: SplitDimsMapping = None
    bnts: SplitDimsMapping = None
    bld: SplitDimsMapping = None

  def setup(self) -> None:
    for field in ('input_dim', 'num_heads', 'dim_per_head'):
      if getattr(self, field) <= 0:
        raise ValueError(f'{field} must be positive, got {getattr(self, field)}')
    wp = self.weight_split_dims_mapping

    def proj(is_output: bool) -> LayerTpl:
      p = self.proj_tpl.clone().set(
        input_dim=self.input_dim,
        num_heads=self.num_heads,
        dim_per_head=self.dim_per_head,
        use_bias=False,
        is_output_projection=is_output,
      )
      p.weight_split_dims_mapping.wt = wp.proj
      return p

    self.create_child('query', proj(False))
    self.create_child('key', proj(False))
    self.create_child('value', proj(False))
    self.create_child('post', proj(True))
    self.create_child(
      'atten_dropout', self.dropout_tpl.clone().set(keep_prob=1.0 - self.atten_dropout_prob)
    )

  def _shard(self, x: JTensor, spec: SplitDimsMapping) -> JTensor:
    if spec is not None and x.ndim != len(spec):
      # [B, N, H] during extend_step: drop the time entry of a [B, T, N, H] spec.
      spec = [spec[0], *spec[2:]]
    return base_layer.maybe_shard(x, spec, self.mesh_axis_names)

  def _attend(
    self,
    query: JTensor,
    key: JTensor,
    value: JTensor,
    bias: JTensor | None,
    mask: JTensor | None,
  ) -> JTensor:
    """Softmax(q k^T + bias, masked) v.

    Args:
      query: [B, T, N, H].
      key: [B, S, N, H].
      value: [B, S, N, H].
      bias: additive bias broadcastable to [B, N, T, S], or None.
      mask: bool, True where attending is allowed, broadcastable to
        [B, N, T, S], or None.

    Returns:
      [B, T, N, H].
    """
    ap = self.activation_split_dims_mapping
    logits = jnp.einsum('BTNH,BSNH->BNTS', query, key, preferred_element_type=jnp.float32)
    if bias is not None:
      logits = logits + bias.astype(jnp.float32)
    if mask is not None:
      # A select, not an additive mask: a fully masked row stays finite
      # (uniform weights, as in HF) instead of overflowing to NaN.
      logits = jnp.where(mask, logits, py_utils.get_large_negative_number(jnp.float32))
    logits = base_layer.maybe_shard(logits, ap.bnts, self.mesh_axis_names)
    probs = jax.nn.softmax(logits, axis=-1).astype(value.dtype)
    probs = self.atten_dropout(probs)
    encoded = jnp.einsum('BNTS,BSNH->BTNH', probs, value)
    return self._shard(encoded, ap.blnh)

  def __call__(
    self,
    query_vec: JTensor,
    kv_vec: JTensor,
    bias: JTensor | None = None,
    mask: JTensor | None = None,
  ) -> JTensor:
    """Full-sequence attention.

    Args:
      query_vec: [B, T, D].
      kv_vec: [B, S, D] (the same array as query_vec for self-attention).
      bias: additive [1|B, N, T, S] (relative position bias), or None.
      mask: bool [1|B, 1, T|1, S], True = may attend, or None.

    Returns:
      [B, T, D]. Fills `key_state`/`value_state` [B, S, N, H] when
      `DECODE_CACHE` is mutable and `decode_cache` is set.
    """
    ap = self.activation_split_dims_mapping
    query = self._shard(self.query(query_vec), ap.blnh)
    key = self._shard(self.key(kv_vec), ap.blnh)
    value = self._shard(self.value(kv_vec), ap.blnh)
    if self.decode_cache and self.is_mutable_collection(DECODE_CACHE):
      self.update_decode_state(KEY_STATE, key)
      self.update_decode_state(VALUE_STATE, value)
    encoded = self._attend(query, key, value, bias, mask)
    return self._shard(self.post(encoded), ap.bld)

  def _write_cache(self, name: str, value: JTensor, time_step: JTensor) -> JTensor:
    """Writes `value` [B, N, H] at `time_step` (scalar or per-row [B])."""
    state = self.get_decode_state(name)
    value = value.astype(state.dtype)
    if time_step.ndim == 0:
      start = (0, time_step.astype(jnp.int32), 0, 0)
      state = jax.lax.dynamic_update_slice(state, value[:, None], start)
    else:
      hit = jnp.arange(state.shape[1])[None, :] == time_step[:, None]  # [B, L]
      state = jnp.where(hit[:, :, None, None], value[:, None], state)
    state = self._shard(state, self.activation_split_dims_mapping.blnh)
    self.update_decode_state(name, state)
    return state

  def extend_step(
    self,
    query_vec: JTensor,
    *,
    time_step: JTensor,
    bias: JTensor | None = None,
    mask: JTensor | None = None,
  ) -> JTensor:
    """One decoding step against the cache.

    Args:
      query_vec: [B, D], the input at `time_step`.
      time_step: int scalar, or [B] (one position per row).
      bias: additive [1|B, N, 1, L] (L = cache length), or None.
      mask: bool [1|B, 1, 1, L], True = may attend (self-attention: positions
        <= time_step; cross-attention: non-padded encoder positions).

    Returns:
      [B, D].
    """
    ap = self.activation_split_dims_mapping
    time_step = jnp.asarray(time_step)
    query = self._shard(self.query(query_vec), ap.blnh)
    if self.is_cross_attention:
      key = self.get_decode_state(KEY_STATE)
      value = self.get_decode_state(VALUE_STATE)
    else:
      key = self._write_cache(KEY_STATE, self.key(query_vec), time_step)
      value = self._write_cache(VALUE_STATE, self.value(query_vec), time_step)
    encoded = self._attend(query[:, None], key, value, bias, mask)[:, 0]
    return self._shard(self.post(encoded), ap.bld)

  def cache_length(self) -> int:
    """Length L of the cached key/value time axis."""
    return self.get_decode_state(KEY_STATE).shape[1]

  def transform_decode_state(self, transform_fn: base_layer.DecodeStateTransformFn) -> None:
    """Applies `transform_fn(state, batch_dim, time_dim)` to the cached K/V."""
    time_dim = -1 if self.is_cross_attention else 1
    for name in (KEY_STATE, VALUE_STATE):
      if not self.has_variable(DECODE_CACHE, name):
        continue
      state = transform_fn(self.get_decode_state(name), 0, time_dim)
      self.update_decode_state(name, self._shard(state, self.activation_split_dims_mapping.blnh))
