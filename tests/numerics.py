"""Float32 tolerances derived from the computation, not from what one machine printed.

XLA emits different code on AVX2 and AVX-512 CPUs (and for sharded and unsharded
programs): sums are reassociated and ops fused differently, so float32 results
differ in the last bits. Any summation order obeys the classic forward-error bound
(Higham, "Accuracy and Stability of Numerical Algorithms", sec. 3.1): a result
whose longest chain of dependent float32 roundings has n steps is within

    gamma_n * scale,   gamma_n = n * u / (1 - n * u),   u = 2**-24

of the exact value, where `scale` is the magnitude the sums work at. Networks
normalise activations (RMSNorm / LayerNorm), so the largest reference magnitude
stands in for `scale`. Two float32 implementations of one computation differ by
at most twice the bound (`implementations=2`); against a float64 reference only
our own rounding counts (`implementations=1`).

`chain` helpers count n for the transformers in this project: every reduction of
length K on the path from input to output contributes K roundings.
"""

import json
import os

import numpy as np

UNIT_ROUNDOFF = 2.0**-24


def gamma(n: int) -> float:
  """Higham's gamma_n for float32: the relative bound of n chained roundings."""
  nu = n * UNIT_ROUNDOFF
  assert nu < 1, f'chain of {n} roundings has no float32 bound'
  return nu / (1 - nu)


def transformer_chain(
  layers: int, width: int, mlp: int, seq: int, head_dim: int, cross_seq: int = 0
) -> int:
  """Roundings along one pre-norm transformer stack [L layers] of the given dims.

  Per layer: norm (mean + variance: 2 * width), Q/K/V projection (width), scores
  (head_dim), softmax normaliser and weighted sum (2 * seq), output projection
  (width), the same again for cross-attention over `cross_seq` keys when > 0,
  then norm (2 * width), MLP in (width) and out (mlp).
  """
  attention = 2 * width + width + head_dim + 2 * seq + width
  cross = 0 if cross_seq == 0 else 2 * width + width + head_dim + 2 * cross_seq + width
  mlp_block = 2 * width + width + mlp
  return layers * (attention + cross + mlp_block) + 2 * width  # + final norm


def f32_atol(want: np.ndarray, chain: int, implementations: int = 2, scale=None) -> float:
  """Absolute tolerance for a float32 result of a `chain`-rounding computation."""
  if scale is None:
    scale = float(np.max(np.abs(want))) if np.size(want) else 0.0
  return implementations * gamma(chain) * scale


def assert_f32_close(
  got,
  want,
  chain: int,
  *,
  implementations: int = 2,
  scale: float | None = None,
  where=None,
  err_msg: str = '',
) -> None:
  """`got` equals `want` within the float32 bound of a `chain`-rounding computation.

  Args:
    got, want: arrays of one shape.
    chain: roundings along the longest dependent path (see `transformer_chain`).
    implementations: 1 when `want` is a float64 reference, 2 when both are float32.
    scale: the magnitude the computation works at; default max |want|.
    where: optional boolean mask (broadcast to the shape); only True entries count.
    err_msg: appended to the failure message.
  """
  got = np.asarray(got, np.float64)
  want = np.asarray(want, np.float64)
  if where is not None:
    mask = np.broadcast_to(where, want.shape)
    got, want = got[mask], want[mask]
  atol = f32_atol(want, chain, implementations, scale)
  msg = f'float32 bound gamma_{chain} x {implementations} -> atol {atol:.3g}. {err_msg}'
  np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=msg)


def mt5_chains(hf_config: dict, t_enc: int, t_dec: int) -> tuple[int, int]:
  """(encoder output, decoder logits) chains of an mT5 given its HF config.json dict."""
  width, mlp, head_dim = hf_config['d_model'], hf_config['d_ff'], hf_config['d_kv']
  enc = transformer_chain(hf_config['num_layers'], width, mlp, t_enc, head_dim)
  layers = hf_config.get('num_decoder_layers') or hf_config['num_layers']
  dec = transformer_chain(layers, width, mlp, t_dec, head_dim, cross_seq=t_enc)
  return enc, enc + dec + width  # + the output projection


def vit_chain(width: int, depth: int, mlp: int, heads: int, patch: int, tokens: int) -> int:
  """Chain of a ViT's final features: patch embedding (patch * patch * 3) + the stack."""
  return patch * patch * 3 + transformer_chain(depth, width, mlp, tokens, width // heads)


def hf_config(directory: str) -> dict:
  """A Hugging Face checkpoint directory's config.json."""
  with open(os.path.join(directory, 'config.json')) as f:
    return json.load(f)


# The 'tiny' sizes of fiddle_configs/vit.py and fiddle_configs/mt5.py (HF config names).
TINY_VIT = dict(width=32, depth=2, mlp=64, heads=4)
TINY_MT5 = dict(d_model=32, num_layers=2, d_ff=48, d_kv=8)


def pali_tiny_chain(patch: int, image_size: int, text_len: int, t_dec: int) -> int:
  """Chain of the logits of PaLI 'tiny': ViT features, projection, then mT5 over both."""
  tokens = (image_size // patch) ** 2
  vit = vit_chain(patch=patch, tokens=tokens, **TINY_VIT)
  _, mt5 = mt5_chains(TINY_MT5, tokens + text_len, t_dec)
  return vit + TINY_VIT['width'] + mt5


# Folding LoRA adapters (W + s A B) against applying them (x W + s (x A) B) in PaLI 'tiny':
# each adapted projection sums K <= 64 + r = 68 products (gamma_K ~ K eps per evaluation,
# twice for the two), and ~30 sequential projections on the deepest path add to first order
# (tests/pali_pax/test_lora_merge_slow.py derives it). Relative to max |logits|.
LORA_FOLD_BOUND = 30 * 4 * 68 * UNIT_ROUNDOFF
