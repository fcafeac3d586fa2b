"""LoRA (Hu et al. 2021) on praxis' projection layers: `W x + (alpha / r) B(A x)`.

The two projection layers PaLI's towers use get a LoRA variant each, in praxis'
idiom (fields, `create_variable` with `WeightHParams`, sharding from the base
weight's `wt`), so a config rewrite can swap them in for the templates
(`fiddle_configs.lora.apply_lora`):

    praxis layer                   where                            adapters
    linears.Linear  w [I, O]       ViT MLP ffn_layer{1,2}/linear,   lora_a [I, r]
                                   mT5 ff wi_0 / wi_1 / wo          lora_b [r, O]
    AttentionProjection w [D,N,H]  ViT and mT5 query/key/value      lora_a [D, r]
                                                                    lora_b [r, N, H]
                                   ViT and mT5 post (output)        lora_a [N, H, r]
                                                                    lora_b [r, D]

`lora_b` starts at zero, so a fresh adapter computes exactly the base layer
(step 0 of a LoRA fine-tune equals the base model). `lora_a` starts Gaussian with
std 1/sqrt(fan-in) (the gradient of B needs A != 0).

praxis 1.4's own `quantization.LinearLoRA` / `AttentionProjectionLoRA` are not
used: they sit on the quantized layers (their quantization machinery), have no
alpha scaling, and factor the output projection over one of N / H only.

Which layers get adapters is decided by path: every projection template becomes
a LoRA variant, and a layer whose module path ('mt5/decoder/x_layers_0/
cross_attention/query', joined by '/') matches none of `lora_targets` creates no
adapter variables and computes the base layer.
"""

import re

import jax.numpy as jnp
import numpy as np
from praxis import base_layer, pytypes
from praxis.layers import attentions, linears

from pali_pax.core import errors

JTensor = pytypes.JTensor
WeightHParams = base_layer.WeightHParams
WeightInit = base_layer.WeightInit

LORA_A = 'lora_a'
LORA_B = 'lora_b'
# Variable names of the adapters (what TRAINABLE='lora' trains).
ADAPTER_VARIABLES = rf'.*/({LORA_A}|{LORA_B})'


class _LoraFields(base_layer.BaseLayer):
  """The fields both LoRA variants share.

  Attributes:
    lora_rank: r; 0 turns the adapter off.
    lora_alpha: scale numerator: the adapter adds (lora_alpha / r) B A x.
    lora_targets: regexes (re.search) over the layer's module path; empty: every
      layer of this type gets an adapter.
  """

  lora_rank: int = 0
  lora_alpha: float = 1.0
  lora_targets: tuple[str, ...] = ()

  @property
  def lora_scale(self) -> float:
    return float(self.lora_alpha) / self.lora_rank

  def _lora_on(self) -> bool:
    if self.lora_rank < 0:
      raise errors.ConfigError(f'lora_rank must be >= 0, got {self.lora_rank}')
    if not self.lora_rank:
      return False
    path = '/'.join(str(p) for p in self.path)
    return not self.lora_targets or any(re.search(t, path) for t in self.lora_targets)

  def _adapter(self, name: str, shape: list[int], split: list | None, std: float) -> None:
    init = WeightInit.Gaussian(std) if std else WeightInit.Constant(0.0)
    self.create_variable(
      name,
      WeightHParams(
        shape=shape, init=init, mesh_shape=self.mesh_shape, tensor_split_dims_mapping=split
      ),
    )


class LoraLinear(linears.Linear, _LoraFields):
  """praxis `Linear` plus a rank-r adapter: `x W + (alpha/r) (x A) B`."""

  def setup(self) -> None:
    super().setup()
    self.has_lora = self._lora_on()
    if not self.has_lora:
      return
    wt = self.weight_split_dims_mapping.wt
    r = self.lora_rank
    self._adapter(
      LORA_A, [self.input_dims, r], wt and [wt[0], None], 1.0 / np.sqrt(self.input_dims)
    )
    self._adapter(LORA_B, [r, self.output_dims], wt and [None, wt[1]], 0.0)

  def lora_delta(self, inputs: JTensor) -> JTensor:
    """(alpha/r) (x A) B for inputs [..., I] -> [..., O]."""
    low = jnp.einsum('...y,yr->...r', inputs, self.theta.lora_a)
    return self.lora_scale * jnp.einsum('...r,rz->...z', low, self.theta.lora_b)

  def __call__(self, inputs: JTensor) -> JTensor:
    out = super().__call__(inputs)
    return out + self.lora_delta(inputs).astype(out.dtype) if self.has_lora else out


class LoraAttentionProjection(attentions.AttentionProjection, _LoraFields):
  """praxis `AttentionProjection` plus a rank-r adapter on its [D, N, H] weight.

  Input projections (query/key/value): `x W + (alpha/r) (x A) B` with A [D, r],
  B [r, N, H]; the output projection (`is_output_projection`): A [N, H, r],
  B [r, D]. Only the default [D, N, H] layout (no `attention_combine_dims`, no
  `use_nhd_shape`) is supported.
  """

  def setup(self) -> None:
    super().setup()
    self.has_lora = self._lora_on()
    if not self.has_lora:
      return
    if self.attention_combine_dims or self.use_nhd_shape:
      raise errors.ConfigError(
        'LoraAttentionProjection supports the [D, N, H] weight layout only '
        '(attention_combine_dims=False, use_nhd_shape=False)'
      )
    wt = self.weight_split_dims_mapping.wt
    d, n, h, r = self.input_dim, self.num_heads, self.dim_per_head, self.lora_rank
    if self.is_output_projection:
      self._adapter(LORA_A, [n, h, r], wt and [wt[1], wt[2], None], 1.0 / np.sqrt(n * h))
      self._adapter(LORA_B, [r, d], wt and [None, wt[0]], 0.0)
    else:
      self._adapter(LORA_A, [d, r], wt and [wt[0], None], 1.0 / np.sqrt(d))
      self._adapter(LORA_B, [r, n, h], wt and [None, wt[1], wt[2]], 0.0)

  def lora_delta(self, inputs: JTensor) -> JTensor:
    """(alpha/r) B(A x): [..., D] -> [..., N, H], or [..., N, H] -> [..., D] (output)."""
    a, b = self.theta.lora_a, self.theta.lora_b
    if self.is_output_projection:
      low = jnp.einsum('...NH,NHr->...r', inputs, a)
      return self.lora_scale * jnp.einsum('...r,rD->...D', low, b)
    low = jnp.einsum('...D,Dr->...r', inputs, a)
    return self.lora_scale * jnp.einsum('...r,rNH->...NH', low, b)

  def __call__(self, inputs: JTensor) -> JTensor:
    out = super().__call__(inputs)
    if not self.has_lora:
      return out
    return out + self.lora_delta(self._cast_to_fprop_dtype(inputs)).astype(out.dtype)


def has_adapter(layer: base_layer.BaseLayer) -> bool:
  """Whether `layer` (a bound projection) carries a LoRA adapter."""
  return bool(getattr(layer, 'has_lora', False))


def fold(w: np.ndarray, a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
  """W + (alpha/r) A B in W's layout, for any of the three adapter shapes.

  Leading axes shared by all three (a scanned stack's [L]) are kept. Computed in
  float32 (float64 would not be what the LoRA model computes either), then cast to W's dtype.

  Raises:
    ValueError: the shapes are none of the three layouts.
  """
  lead = w.ndim - 2 if a.ndim == b.ndim else w.ndim - 3
  r = a.shape[-1]
  a32, b32 = np.asarray(a, np.float32), np.asarray(b, np.float32)
  if a.ndim == b.ndim:  # Linear: w [I, O], a [I, r], b [r, O]
    delta = np.matmul(a32, b32)
  elif b.ndim == a.ndim + 1:  # input projection: w [D, N, H], a [D, r], b [r, N, H]
    delta = np.einsum('...dr,...rnh->...dnh', a32, b32)
  elif a.ndim == b.ndim + 1:  # output projection: w [D, N, H], a [N, H, r], b [r, D]
    delta = np.einsum('...nhr,...rd->...dnh', a32, b32)
  else:
    raise ValueError(f'not a LoRA adapter pair: w {w.shape}, a {a.shape}, b {b.shape}')
  if lead < 0 or delta.shape != w.shape:
    raise ValueError(f'adapter shapes a {a.shape}, b {b.shape} do not fit w {w.shape}')
  return (np.asarray(w, np.float32) + np.float32(alpha / r) * delta).astype(w.dtype)


def fold_params(params: dict, alpha: float) -> tuple[dict, int]:
  """A copy of a params tree with every adapter folded into its `w` and removed.

  Returns:
    (the plain tree, the number of adapters folded).
  """
  folded = 0

  def walk(node: dict) -> dict:
    nonlocal folded
    out = {
      k: walk(v) if isinstance(v, dict) else v for k, v in node.items() if k not in (LORA_A, LORA_B)
    }
    if LORA_A in node and LORA_B in node:
      out['w'] = fold(
        np.asarray(node['w']), np.asarray(node[LORA_A]), np.asarray(node[LORA_B]), alpha
      )
      folded += 1
    return out

  return walk(params), folded
