"""T5 bucketed relative position bias, computed once per stack.

T5 (and mT5) add a learned scalar per (head, bucket) to every attention logit,
where the bucket is a function of `key_position - query_position`: exact
buckets for small distances, log-spaced buckets up to `max_distance`, one
shared bucket beyond. The encoder uses bidirectional buckets (half of them for
keys to the right of the query), the decoder unidirectional ones (keys to the
right of the query all fall in bucket 0; the causal mask hides them anyway).

HF / T5X keep the table in the first layer of each stack; here it lives in the
stack (`RelativePositionBias`), which computes the bias once and hands it to
every layer.
"""

import functools

import jax.numpy as jnp
import numpy as np
from praxis import base_layer, pytypes

from pali_pax.core import errors

JTensor = pytypes.JTensor
SplitDimsMapping = pytypes.SplitDimsMapping
WeightHParams = base_layer.WeightHParams


def validate_buckets(num_buckets: int, max_distance: int) -> None:
  """Raises ValueError for bucket settings the T5 bucketing is undefined for."""
  if num_buckets < 4 or num_buckets % 2:
    raise errors.ConfigError(
      f'relative_attention_num_buckets must be even and >= 4, got {num_buckets}'
    )
  if max_distance <= num_buckets // 2:
    raise errors.ConfigError(
      f'relative_attention_max_distance ({max_distance}) must exceed '
      f'relative_attention_num_buckets // 2 ({num_buckets // 2})'
    )


def relative_position_bucket(
  relative_position: np.ndarray, bidirectional: bool, num_buckets: int, max_distance: int
) -> np.ndarray:
  """T5's bucket of each relative position (numpy, host side).

  Args:
    relative_position: int array, `key_position - query_position`.
    bidirectional: encoder style (True) or causal decoder style (False).
    num_buckets: number of buckets (32 for mT5).
    max_distance: distances >= this share the last bucket (128 for mT5).

  Returns:
    int32 array of the same shape, values in [0, num_buckets).
  """
  validate_buckets(num_buckets, max_distance)
  rel = np.asarray(relative_position, dtype=np.int64)
  buckets = np.zeros(rel.shape, np.int64)
  n = num_buckets
  if bidirectional:
    n //= 2
    buckets += (rel > 0).astype(np.int64) * n
    dist = np.abs(rel)
  else:
    dist = np.maximum(-rel, 0)
  max_exact = n // 2
  # Log-spaced buckets. float64 plus a tiny epsilon: distances that fall exactly
  # on a bucket boundary (16, 32, 64 for 32 buckets / 128) go to the upper bucket
  # on every platform, as in HF and T5X, instead of depending on float32 log rounding.
  scaled = np.log(np.maximum(dist, 1) / max_exact) / np.log(max_distance / max_exact)
  large = max_exact + np.floor(scaled * (n - max_exact) + 1e-6).astype(np.int64)
  large = np.minimum(large, n - 1)
  buckets += np.where(dist < max_exact, dist, large)
  return buckets.astype(np.int32)


@functools.lru_cache(maxsize=32)
def _bucket_table(
  bidirectional: bool, num_buckets: int, max_distance: int
) -> tuple[np.ndarray, int]:
  """Buckets of relative positions -R..R (index r + R); beyond R nothing changes."""
  radius = max(max_distance, num_buckets)
  rel = np.arange(-radius, radius + 1)
  return relative_position_bucket(rel, bidirectional, num_buckets, max_distance), radius


def bucket_lookup(
  relative_position: JTensor, bidirectional: bool, num_buckets: int, max_distance: int
) -> JTensor:
  """`relative_position_bucket` for traced int arrays (table lookup, jit friendly)."""
  table, radius = _bucket_table(bidirectional, num_buckets, max_distance)
  index = jnp.clip(relative_position, -radius, radius) + radius
  return jnp.asarray(table)[index]


class RelativePositionBias(base_layer.BaseLayer):
  """Learned T5 relative position bias for all heads of one stack.

  Attributes:
    num_heads: number of attention heads N.
    num_buckets: number of relative position buckets (32 for mT5).
    max_distance: distance from which all positions share one bucket (128).
    bidirectional: True for the encoder, False for the causal decoder.
  """

  num_heads: int = 0
  num_buckets: int = 32
  max_distance: int = 128
  bidirectional: bool = True

  class ActivationSharding(base_layer.BaseLayer.ActivationSharding):
    """Activation sharding.

    Attributes:
      out: sharding of the bias [1|B, N, T, S] (heads over the model axis).
    """

    out: SplitDimsMapping = None

  def setup(self) -> None:
    validate_buckets(self.num_buckets, self.max_distance)
    if self.num_heads <= 0:
      raise errors.ConfigError(f'num_heads must be positive, got {self.num_heads}')
    wp = self.weight_split_dims_mapping
    self.create_variable(
      'emb_var',
      WeightHParams(
        shape=[self.num_buckets, self.num_heads],
        mesh_shape=self.mesh_shape,
        tensor_split_dims_mapping=wp.wt,
      ),
    )

  def __call__(self, query_positions: JTensor, key_positions: JTensor) -> JTensor:
    """Additive attention bias.

    Args:
      query_positions: int32 [T] (shared by the batch) or [B, T].
      key_positions: int32 [S].

    Returns:
      float [1, N, T, S] or [B, N, T, S] (fprop dtype).
    """
    query_positions = jnp.asarray(query_positions, jnp.int32)
    if query_positions.ndim == 1:
      query_positions = query_positions[None]
    rel = key_positions[None, None, :] - query_positions[:, :, None]  # [b, T, S]
    buckets = bucket_lookup(rel, self.bidirectional, self.num_buckets, self.max_distance)
    table = self._cast_to_fprop_dtype(self.theta.emb_var)
    values = table[buckets]  # [b, T, S, N]
    bias = jnp.transpose(values, (0, 3, 1, 2))
    return base_layer.maybe_shard(
      bias, self.activation_split_dims_mapping.out, self.mesh_axis_names
    )
