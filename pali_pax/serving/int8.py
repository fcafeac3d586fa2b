"""Per-channel symmetric int8 weights for serving: quantize a params tree, dequantize in jit.

Which weights (by their place in the PaliModel params tree; any leading layer axis of a
scanned `repeat` stack counts as a channel axis, so every layer has its own scales):

| weight | shape | reduced over (one scale per the rest) |
|---|---|---|
| `.../linear/w` (FF layers, fusion projection, mT5 lm head) | [..., in, out] | in |
| attention `query` / `key` / `value` `w` | [..., D, N, H] | D |
| attention `post` `w` (output D) | [..., D, N, H] | N, H |
| ViT `patch_embedding/w` | [p, p, 3, W] | p, p, 3 |
| mT5 `token_emb/emb_var` (a lookup) | [V, D] | D (one scale per row) |

Everything else (norms, biases, position embeddings and biases) stays float32.
q = round(w / s) in [-127, 127] with s = max|w| / 127 over the reduced axes, so
|dequantize(q) - w| <= s / 2 per element. The quantized leaves are `QTensor(q, scale)`
pytree nodes; `dequantize_params` turns them back into float32 inside the jitted (or
jax2tf-exported) function, so the stored / transferred weights are int8 (weight-only
quantization: the matmuls run in float32).

Why not praxis.layers.quantization (it imports under our jax shim): its quantized
`Linear` / `AttentionProjection` replace layer classes in the model config and bring
their own param layout (`w` + `w_quantized_scale`) per layer class; our ViT is a praxis
`Repeat` stack and the mT5 has its own T5 attention and gated feed-forward layers, so
the tree route covers every linear with one rule and leaves the model config as trained.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pali_pax.core import errors

MODES = (None, 'int8')
QMAX = 127


class QTensor(NamedTuple):
  """An int8 weight: q int8 [shape], scale float32 broadcastable to [shape] (keepdims)."""

  q: Any
  scale: Any


def reduced_axes(path: tuple[str, ...], ndim: int) -> tuple[int, ...] | None:
  """Axes one scale covers for the weight at `path` (see table); None = stays float32."""
  if len(path) < 2 or ndim < 2:
    return None
  parent, name = path[-2], path[-1]
  if name == 'w' and parent == 'linear':
    return (ndim - 2,)
  if name == 'w' and parent in ('query', 'key', 'value') and ndim >= 3:
    return (ndim - 3,)
  if name == 'w' and parent == 'post' and ndim >= 3:
    return (ndim - 2, ndim - 1)
  if name == 'w' and parent == 'patch_embedding' and ndim == 4:
    return (0, 1, 2)
  if name == 'emb_var' and parent == 'token_emb':
    return (ndim - 1,)
  return None


def quantize(w: Any, axes: tuple[int, ...]) -> QTensor:
  """Symmetric int8 of float `w` with one scale per index of the axes not in `axes`."""
  w = np.asarray(w, np.float32)
  amax = np.max(np.abs(w), axis=axes, keepdims=True)
  scale = np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)
  q = np.clip(np.rint(w / scale), -QMAX, QMAX).astype(np.int8)
  return QTensor(q, scale)


def _key(k: Any) -> str:
  return str(getattr(k, 'key', getattr(k, 'name', k)))


def quantize_params(params: Any) -> Any:
  """The params tree with the linears' weights as int8 `QTensor`s (numpy, host memory)."""

  def one(path: Any, leaf: Any) -> Any:
    axes = reduced_axes(tuple(_key(k) for k in path), np.ndim(leaf))
    return leaf if axes is None else quantize(leaf, axes)

  return jax.tree_util.tree_map_with_path(one, params)


def _is_q(x: Any) -> bool:
  return isinstance(x, QTensor)


def dequantize_params(params: Any) -> Any:
  """float32 weights back from `QTensor`s (inside jit: a multiply per weight); others as is."""

  def one(x: Any) -> Any:
    return x.q.astype(jnp.float32) * x.scale if _is_q(x) else x

  return jax.tree_util.tree_map(one, params, is_leaf=_is_q)


def apply(params: Any, mode: str | None) -> Any:
  """`params` for serving mode `mode` (None: unchanged; 'int8': `quantize_params`)."""
  if mode not in MODES:
    raise errors.ConfigError(f'quantize must be one of {MODES}, got {mode!r}')
  return params if mode is None else quantize_params(params)


def weight_bytes(params: Any) -> int:
  """Bytes of every array of a (possibly quantized) params tree."""
  return sum(int(np.asarray(x).nbytes) for x in jax.tree_util.tree_leaves(params))


def float32_bytes(params: Any) -> int:
  """Bytes the same tree takes with every weight as float32 (the unquantized size)."""
  leaves = jax.tree_util.tree_leaves(params, is_leaf=_is_q)
  return sum(4 * int(np.size(x.q if _is_q(x) else x)) for x in leaves)


def quantized_fraction(params: Any) -> float:
  """Fraction of the parameters (counted as elements) stored as int8."""
  total = quant = 0
  for leaf in jax.tree_util.tree_leaves(params, is_leaf=_is_q):
    n = int(np.size(leaf.q)) if _is_q(leaf) else int(np.size(leaf))
    total += n
    quant += n if _is_q(leaf) else 0
  return quant / max(total, 1)
