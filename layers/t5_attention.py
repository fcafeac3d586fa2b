"""T5 / mT5 multi-head attention with an externally supplied bias and a KV cache.

Differences from praxis `DotProductAttention` that make a separate layer
necessary: T5 neither scales queries nor logits, and the relative position bias
is computed once per stack and *added* to every layer's logits (praxis only has
a per-layer relative bias and a non-additive mask). The projections are praxis
`AttentionProjection`s without bias, so the weights have praxis' layout:

    query/w, key/w, value/w   [D, N, H]
    post/w                    [D, N, H]   (output projection, 'BTNH,DNH->BTD')

The output projection is computed with `post/w` directly (not through the
projection layer's call), with N and H flattened into one
contracting axis (XLA CPU copies the weight for a two-axis contraction). Q, K
and V can run as one matmul against the weights stacked at compute time
(`fuse_qkv`, off by default).

Decoding follows praxis conventions. When the `DECODE_CACHE` collection is
mutable, `__call__` stores the projected keys and values: `key_state`
[B, N, H, S] (keys transposed) and `value_state` [B, N, S, H]. These are the
layouts XLA CPU's batched matmuls read directly, so a decoding step copies no
cache (with [B, S, N, H] caches XLA transposed every cache on every step: the
largest cost of a step, docs/benchmarks.md). For self-attention,
`extend_step(x, time_step=t)` then writes position t of that cache and attends
over the whole cache (the caller's mask hides positions > t). For
cross-attention the cache holds the encoder keys/values, computed once;
`extend_step` only projects the query. `transform_decode_state` passes the
time axis (3 for keys, 2 for values) for self-attention states and
`time_dim=-1` ("no time axis", as praxis' `pad_state_fn`/`slice_state_fn`
understand it) for cross-attention states, so padding/slicing leaves them alone
while batch broadcasts and beam reordering apply to both.
"""

import jax
import jax.numpy as jnp
from praxis import base_layer, pax_fiddle, py_utils, pytypes
from praxis.layers import attentions, stochastics

from pali_pax.core import errors
from pali_pax.layers import lora

JTensor = pytypes.JTensor
SplitDimsMapping = pytypes.SplitDimsMapping
LayerTpl = pax_fiddle.Config[base_layer.BaseLayer]
template_field = base_layer.template_field
DECODE_CACHE = base_layer.DECODE_CACHE

KEY_STATE = 'key_state'
VALUE_STATE = 'value_state'
# Axis order of each cache relative to [B, S, N, H], and its time axis.
CACHE_AXES = {KEY_STATE: (0, 2, 3, 1), VALUE_STATE: (0, 2, 1, 3)}
CACHE_TIME_DIM = {KEY_STATE: 3, VALUE_STATE: 2}


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
    fuse_qkv: compute the query, key and value projections of self-attention
      (and key with value for cross-attention) as one matmul against the
      three [D, N, H] weights concatenated at compute time, then split the
      result: fewer, larger matmuls (docs/benchmarks.md). The variables keep
      their separate `query`/`key`/`value` layout, so checkpoints do not change.
      Off by default: on XLA CPU it measured no faster to train and slower to
      decode (the stacking runs on every step; docs/benchmarks.md).
    proj_tpl: projection template (praxis `AttentionProjection`, no bias).
    dropout_tpl: dropout template for the attention probabilities.
  """

  input_dim: int = 0
  num_heads: int = 0
  dim_per_head: int = 0
  atten_dropout_prob: float = 0.0
  is_cross_attention: bool = False
  decode_cache: bool = True
  fuse_qkv: bool = False
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
        raise errors.ConfigError(f'{field} must be positive, got {getattr(self, field)}')
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

  def _project(self, x: JTensor, names: tuple[str, ...]) -> list[JTensor]:
    """Projections `names` of `x` [..., D] -> one [..., N, H] per name.

    With `fuse_qkv`, one einsum against the weights stacked as [D, k, N, H]
    (k = len(names)); otherwise each praxis projection on its own.
    """
    children = [getattr(self, name) for name in names]
    # LoRA projections run as layers (base matmul + adapter), never fused.
    if not self.fuse_qkv or len(names) == 1 or any(lora.has_adapter(c) for c in children):
      return [c(x) for c in children]
    w = jnp.stack([c.theta.w for c in children], axis=1)  # [D, k, N, H]
    x = children[0]._cast_to_fprop_dtype(x)
    out = jnp.einsum('...D,DKNH->...KNH', x, w)
    return [out[..., i, :, :] for i in range(len(names))]

  def _output(self, encoded: JTensor) -> JTensor:
    """Output projection [..., N, H] -> [..., D] with one contracting axis.

    The same product as praxis' `post` ('...NH,DNH->...D'), with heads and head
    width flattened first: XLA CPU lowers a two-axis contraction with copies of
    the [D, N, H] weight (on every decoding step), a one-axis one without. A LoRA
    `post` (`layers.lora`) adds its adapter's term.
    """
    w = self.post.theta.w
    d, n, h = w.shape
    encoded = self.post._cast_to_fprop_dtype(encoded)
    flat = encoded.reshape(*encoded.shape[:-2], n * h)
    out = jnp.einsum('...K,DK->...D', flat, w.reshape(d, n * h))
    if lora.has_adapter(self.post):
      out = out + self.post.lora_delta(encoded).astype(out.dtype)
    return out

  def _probs(self, logits: JTensor, bias: JTensor | None, mask: JTensor | None) -> JTensor:
    """Softmax over the last axis of float32 `logits` [B, N, T, S] + bias, masked."""
    if bias is not None:
      logits = logits + bias.astype(jnp.float32)
    if mask is not None:
      # A select, not an additive mask: a fully masked row stays finite
      # (uniform weights, as in HF) instead of overflowing to NaN.
      logits = jnp.where(mask, logits, py_utils.get_large_negative_number(jnp.float32))
    logits = base_layer.maybe_shard(
      logits, self.activation_split_dims_mapping.bnts, self.mesh_axis_names
    )
    return jax.nn.softmax(logits, axis=-1)

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
    logits = jnp.einsum('BTNH,BSNH->BNTS', query, key, preferred_element_type=jnp.float32)
    probs = self.atten_dropout(self._probs(logits, bias, mask).astype(value.dtype))
    encoded = jnp.einsum('BNTS,BSNH->BTNH', probs, value)
    return self._shard(encoded, self.activation_split_dims_mapping.blnh)

  def _attend_cached(
    self,
    query: JTensor,
    key_t: JTensor,
    value: JTensor,
    bias: JTensor | None,
    mask: JTensor | None,
  ) -> JTensor:
    """One query per row against the caches: [B, N, H] -> [B, N, H].

    Args:
      query: [B, N, H].
      key_t: cached keys [B, N, H, L].
      value: cached values [B, N, L, H].
      bias: additive bias broadcastable to [B, N, 1, L], or None.
      mask: bool, broadcastable to [B, N, 1, L], or None.
    """
    logits = jnp.einsum(
      'BNTH,BNHL->BNTL', query[:, :, None], key_t, preferred_element_type=jnp.float32
    )
    probs = self.atten_dropout(self._probs(logits, bias, mask).astype(value.dtype))
    return jnp.einsum('BNTL,BNLH->BNTH', probs, value)[:, :, 0]

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
      [B, T, D]. Fills `key_state` [B, N, H, S] and `value_state`
      [B, N, S, H] when `DECODE_CACHE` is mutable and `decode_cache` is set.
    """
    ap = self.activation_split_dims_mapping
    if query_vec is kv_vec:
      query, key, value = self._project(query_vec, ('query', 'key', 'value'))
    else:
      (query,) = self._project(query_vec, ('query',))
      key, value = self._project(kv_vec, ('key', 'value'))
    query, key, value = (self._shard(x, ap.blnh) for x in (query, key, value))
    if self.decode_cache and self.is_mutable_collection(DECODE_CACHE):
      for name, x in ((KEY_STATE, key), (VALUE_STATE, value)):
        self._update_cache(name, jnp.transpose(x, CACHE_AXES[name]))
    encoded = self._attend(query, key, value, bias, mask)
    return self._shard(self._output(encoded), ap.bld)

  def _update_cache(self, name: str, state: JTensor) -> None:
    """Stores cache `name` in its layout (`CACHE_AXES`), sharded like [B, S, N, H]."""
    spec = self.activation_split_dims_mapping.blnh
    if spec is not None:
      spec = [spec[i] for i in CACHE_AXES[name]]
    self.update_decode_state(name, base_layer.maybe_shard(state, spec, self.mesh_axis_names))

  def _write_cache(self, name: str, value: JTensor, time_step: JTensor) -> JTensor:
    """Writes `value` [B, N, H] at `time_step` (scalar or per-row [B]) of cache `name`."""
    state = self.get_decode_state(name)
    axis = CACHE_TIME_DIM[name]
    value = jnp.expand_dims(value.astype(state.dtype), axis)  # a time axis of length 1
    if time_step.ndim == 0:
      start = [0] * state.ndim
      start[axis] = time_step.astype(jnp.int32)
      state = jax.lax.dynamic_update_slice(state, value, start)
    else:
      shape = [state.shape[0]] + [1] * (state.ndim - 1)
      shape[axis] = state.shape[axis]
      positions = jax.lax.broadcasted_iota(jnp.int32, shape, axis)
      state = jnp.where(positions == time_step.reshape(-1, 1, 1, 1), value, state)
    self._update_cache(name, state)
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
    if self.is_cross_attention:
      (query,) = self._project(query_vec, ('query',))
      key = self.get_decode_state(KEY_STATE)
      value = self.get_decode_state(VALUE_STATE)
    else:
      query, key, value = self._project(query_vec, ('query', 'key', 'value'))
      key = self._write_cache(KEY_STATE, key, time_step)
      value = self._write_cache(VALUE_STATE, value, time_step)
    query = self._shard(query, ap.blnh)
    encoded = self._shard(self._attend_cached(query, key, value, bias, mask), ap.blnh)
    return self._shard(self._output(encoded), ap.bld)

  def cache_length(self) -> int:
    """Length L of the cached key/value time axis."""
    return self.get_decode_state(VALUE_STATE).shape[CACHE_TIME_DIM[VALUE_STATE]]

  def transform_decode_state(self, transform_fn: base_layer.DecodeStateTransformFn) -> None:
    """Applies `transform_fn(state, batch_dim, time_dim)` to the cached K/V."""
    for name in (KEY_STATE, VALUE_STATE):
      if not self.has_variable(DECODE_CACHE, name):
        continue
      time_dim = -1 if self.is_cross_attention else CACHE_TIME_DIM[name]
      self._update_cache(name, transform_fn(self.get_decode_state(name), 0, time_dim))
