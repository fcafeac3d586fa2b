"""int8 weights for serving: quantize a params tree, dequantize in jit.

Which weights (by their place in the PaliModel params tree; any leading layer axis of a
scanned `repeat` stack counts as a channel axis, so every layer has its own scales):

| weight | shape | stored as | reduced over (one scale per the rest) |
|---|---|---|---|
| `.../linear/w` (FF layers, fusion projection) | [..., in, out] | int8 | in |
| attention `query` / `key` / `value` `w` | [..., D, N, H] | int8 | D |
| attention `post` `w` (output D) | [..., D, N, H] | int8 | N, H |
| ViT `patch_embedding/w` | [p, p, 3, W] | int8 | p, p, 3 |
| mT5 `token_emb/emb_var` (a lookup) | [V, D] | int8 | D (one scale per row) |
| mT5 lm head `softmax/logits_ffn/linear/w` | [D, V] | float16 | (no scale) |

Everything else (norms, biases, position embeddings and biases) stays float32.
int8: q = round(w / s) in [-127, 127] with s = max|w| / 127 over the reduced axes, so
|dequantize(q) - w| <= s / 2 per element. The quantized leaves are `QTensor(q, scale)`
pytree nodes (per-channel, scale [..., 1, out] with keepdims: praxis' per-channel layout);
`dequantize_params` turns them (and float16 leaves) back into float32 inside the jitted
(or jax2tf-exported) function, so the stored / transferred weights are int8 (weight-only
quantization: the matmuls run in float32).

Why the lm head is float16 (`python -m benchmarks.quantize --by_group`): its error lands
on the logits directly, one independent error per vocabulary entry, so it reorders
near-tied tokens more than any other group (on the tiny demo job, int8 alone it changed
19 of 256 greedy strings, the whole int8 tree 17). float16 rounds to within 2^-11 |w|,
>= 8x finer than a per-channel int8 step (max|w| / 254). The head is 8.3% of PaLI-3B's
parameters (mT5-Large: V=250k x D=1024): with it float16 the 3B weight bytes are 0.272x
float32, all-int8 0.251x (`planned_bytes` on the abstract shapes). On the tiny models
the head is a third of the parameters, so their ratio is higher (0.36x).

Why not praxis.layers.quantization (it imports under our jax shim): its quantized
`Linear` / `AttentionProjection` replace layer classes in the model config and bring
their own param layout (`w` + `w_quantized_scale`) per layer class; our ViT is a praxis
`Repeat` stack and the mT5 has its own T5 attention and gated feed-forward layers, so
the tree route covers every linear with one rule and leaves the model config as trained.
"""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pali_pax.core import errors

MODES = (None, 'int8')
QMAX = 127
LM_HEAD = ('softmax', 'logits_ffn', 'linear', 'w')  # path suffix of the mT5 lm head
HEAD_DTYPES = ('float16', 'int8')  # how `quantize_params` stores the lm head
_F16_MAX = float(np.finfo(np.float16).max)


class QTensor(NamedTuple):
  """An int8 weight: q int8 [shape], scale float32 broadcastable to [shape] (keepdims)."""

  q: Any
  scale: Any


def reduced_axes(path: tuple[str, ...], ndim: int) -> tuple[int, ...] | None:
  """Axes one int8 scale covers for the weight at `path` (see table); None = not int8."""
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


def storage(path: tuple[str, ...], ndim: int, head: str = 'float16') -> str:
  """'int8', 'float16' or 'float32': how `quantize_params(head=head)` stores this weight."""
  if head not in HEAD_DTYPES:
    raise errors.ConfigError(f'head must be one of {HEAD_DTYPES}, got {head!r}')
  if head == 'float16' and tuple(path[-len(LM_HEAD) :]) == LM_HEAD:
    return 'float16'
  return 'float32' if reduced_axes(path, ndim) is None else 'int8'


def quantize(w: Any, axes: tuple[int, ...]) -> QTensor:
  """Symmetric int8 of float `w` with one scale per index of the axes not in `axes`."""
  w = np.asarray(w, np.float32)
  amax = np.max(np.abs(w), axis=axes, keepdims=True)
  scale = np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)
  q = np.clip(np.rint(w / scale), -QMAX, QMAX).astype(np.int8)
  return QTensor(q, scale)


def _key(k: Any) -> str:
  return str(getattr(k, 'key', getattr(k, 'name', k)))


def path_names(path: Any) -> tuple[str, ...]:
  """A jax key path as names, e.g. ('mt5', 'softmax', 'logits_ffn', 'linear', 'w')."""
  return tuple(_key(k) for k in path)


def quantize_params(params: Any, head: str = 'float16') -> Any:
  """The params tree stored as in the table (numpy, host memory).

  head: 'float16' (the default: lm head as float16) or 'int8' (the lm head per-channel
    int8 like the other linears; smaller, less greedy agreement).
  """

  def one(path: Any, leaf: Any) -> Any:
    p = path_names(path)
    kind = storage(p, np.ndim(leaf), head)
    if kind == 'float16':
      w = np.asarray(leaf, np.float32)
      if np.abs(w).max(initial=0.0) > _F16_MAX:  # would overflow to inf: int8 has a scale
        return quantize(w, reduced_axes(p, w.ndim))
      return w.astype(np.float16)
    return leaf if kind == 'float32' else quantize(leaf, reduced_axes(p, np.ndim(leaf)))

  return jax.tree_util.tree_map_with_path(one, params)


def _is_q(x: Any) -> bool:
  return isinstance(x, QTensor)


def dequantize_params(params: Any) -> Any:
  """float32 weights back from `QTensor`s and float16 leaves (inside jit: a multiply or a cast)."""

  def one(x: Any) -> Any:
    if _is_q(x):
      return x.q.astype(jnp.float32) * x.scale
    return x.astype(jnp.float32) if x.dtype == jnp.float16 else x

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


def planned_bytes(params: Any, head: str = 'float16') -> int:
  """`weight_bytes(quantize_params(params, head))` from shapes alone (float32 input tree).

  params: a float32 params tree or its abstract shapes (jax.ShapeDtypeStruct leaves, e.g.
    `core.params.abstract_params`), so PaLI-3B's ratio costs no allocation.
  """
  total = 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    p, shape = path_names(path), tuple(leaf.shape)
    kind, n = storage(p, len(shape), head), math.prod(shape)
    if kind == 'int8':
      axes = reduced_axes(p, len(shape))
      total += n + 4 * math.prod(1 if i in axes else d for i, d in enumerate(shape))
    else:
      total += n * (2 if kind == 'float16' else 4)
  return total


def quantized_fraction(params: Any) -> float:
  """Fraction of the parameters (counted as elements) stored as int8."""
  total = quant = 0
  for leaf in jax.tree_util.tree_leaves(params, is_leaf=_is_q):
    n = int(np.size(leaf.q)) if _is_q(leaf) else int(np.size(leaf))
    total += n
    quant += n if _is_q(leaf) else 0
  return quant / max(total, 1)
