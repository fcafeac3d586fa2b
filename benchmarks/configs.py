"""The benchmarked model shapes and the PaliModel configs built from them."""

import dataclasses
from typing import Any

import jax.numpy as jnp
from praxis import pax_fiddle
from praxis.layers import repeats

from pali_pax import model as model_lib
from pali_pax.fiddle_configs import mt5 as mt5_configs
from pali_pax.fiddle_configs import pali
from pali_pax.fiddle_configs import vit as vit_configs


@dataclasses.dataclass(frozen=True)
class BenchSpec:
  """One benchmarked shape: which ViT and mT5, image size, batch and lengths.

  Attributes:
    name: label in tables ('small', 'base', ...).
    vit: ViT variant with patch, e.g. 'S/16'.
    mt5: mT5 size key, e.g. 'small'.
    image_size: pixels per side.
    batch: examples per step.
    input_len: prompt tokens Ti.
    target_len: decoder tokens To.
    vocab: vocabulary size V.
  """

  name: str
  vit: str
  mt5: str
  image_size: int = 224
  batch: int = 8
  input_len: int = 16
  target_len: int = 16
  vocab: int = 32_000

  def replace(self, **kw: Any) -> 'BenchSpec':
    return dataclasses.replace(self, **kw)


SPECS: dict[str, BenchSpec] = {
  # Tiny: smoke tests only (4 visual tokens, vocab 128).
  'tiny': BenchSpec(
    'tiny', 'tiny/14', 'tiny', image_size=28, batch=2, input_len=4, target_len=4, vocab=128
  ),
  # The demo's model and batch (PaliTinySynthetic: 16 visual tokens, the shipped vocabulary).
  'demo': BenchSpec(
    'demo', 'tiny/8', 'tiny', image_size=32, batch=32, input_len=24, target_len=16, vocab=2100
  ),
  'small': BenchSpec('small', 'S/16', 'small'),
  'base': BenchSpec('base', 'B/16', 'base'),
}


@dataclasses.dataclass(frozen=True)
class ModelOptions:
  """Speed-relevant switches of our model, benchmarked side by side.

  Attributes:
    vit_scan: ViT blocks under praxis Repeat (one compiled block) or unrolled.
    vit_remat: rematerialisation policy of the scanned ViT: 'default' (the
      layer's own, SAVE_NOTHING: the backward pass recomputes each block's
      forward), 'none' (save everything), 'dots' (save matmul outputs without
      batch dims), 'nothing'.
    mt5_scan: mT5 stacks under praxis Repeat (the opt-in `T5Stack.scan`).
    mt5_remat: policy of the scanned mT5 stacks (same names; 'default' is
      the layer's SAVE_NOTHING).
    fprop_dtype: activation/compute dtype ('float32' or 'bfloat16'); weights
      and optimizer state stay float32 as in Pax.
    mt5_decode_unrolled: scanned mT5 stacks decode over per-layer caches
      (`T5Stack.unroll_in_decode`) rather than with a scan over the stacked
      caches (the default).
    mt5_fused: mT5 attention projections as one matmul (`T5Attention.fuse_qkv`)
      and the gated feed-forward's two input projections as one
      (`GatedFeedForward.fuse_gated_projections`); off by default.
  """

  vit_scan: bool = True
  vit_remat: str = 'default'
  mt5_scan: bool = False
  mt5_remat: str = 'default'
  fprop_dtype: str = 'float32'
  mt5_decode_unrolled: bool = False
  mt5_fused: bool = False

  def label(self) -> str:
    vit = f'vit {"scan" if self.vit_scan else "unrolled"}'
    if self.vit_scan and self.vit_remat != 'default':
      vit += f' remat={self.vit_remat}'
    mt5 = f'mt5 {"scan" if self.mt5_scan else "unrolled"}'
    if self.mt5_scan and self.mt5_remat != 'default':
      mt5 += f' remat={self.mt5_remat}'
    if self.mt5_scan and self.mt5_decode_unrolled:
      mt5 += ' decode unrolled'
    if self.mt5_fused:
      mt5 += ' fused'
    return f'{vit}, {mt5}, {self.fprop_dtype}'


def _remat_policy(name: str) -> Any:
  t = repeats.AutodiffCheckpointType
  return {
    'none': t.SAVE_EVERYTHING,
    'dots': t.SAVE_DOT_WITH_NO_BATCH_DIM,
    'nothing': t.SAVE_NOTHING,
  }[name]


# The library's defaults (vit_config / mt5_config): the "before" of every change.
LIBRARY_DEFAULT = ModelOptions()
# The options the train and decode sections use for "ours": the library
# defaults measured fastest at 224 px on this CPU (see the ablation section).
OURS = ModelOptions()
# High resolutions need the mT5 stacks scanned with remat to stay in memory.
LEAN = ModelOptions(mt5_scan=True)
# Extra cached-decoding variants of the decode section: {method name: options}.
DECODE_VARIANTS: dict[str, ModelOptions] = {
  'ours_cached_mt5_scanned': ModelOptions(mt5_scan=True, mt5_decode_unrolled=True),
  'ours_cached_mt5_scanned_stacked_decode': ModelOptions(mt5_scan=True),
  'ours_cached_fused': ModelOptions(mt5_fused=True),
}
# Each change, benchmarked against LIBRARY_DEFAULT (section 'ablation').
VARIANTS: dict[str, ModelOptions] = {
  'mT5 stacks scanned (praxis Repeat, remat: save nothing)': ModelOptions(mt5_scan=True),
  'mT5 scanned, remat saves matmul outputs': ModelOptions(mt5_scan=True, mt5_remat='dots'),
  'ViT scan without remat (save everything)': ModelOptions(vit_remat='none'),
  'ViT scan, remat saves matmul outputs': ModelOptions(vit_remat='dots'),
  'ViT unrolled (no scan, no remat)': ModelOptions(vit_scan=False),
  'bfloat16 activations': ModelOptions(fprop_dtype='bfloat16'),
  'mT5 projections fused (one Q/K/V and one wi_0/wi_1 matmul)': ModelOptions(mt5_fused=True),
}


def model_config(
  spec: BenchSpec, opts: ModelOptions = LIBRARY_DEFAULT
) -> pax_fiddle.Config[model_lib.PaliModel]:
  """The PaliModel config of `spec` with the switches of `opts` (unsharded)."""
  vit = vit_configs.vit_config(spec.vit, image_size=spec.image_size, scan=opts.vit_scan)
  if opts.vit_remat != 'default':
    vit.checkpoint_policy = _remat_policy(opts.vit_remat)
  mt5 = mt5_configs.mt5_config(spec.mt5, vocab_size=spec.vocab, scan=opts.mt5_scan)
  for stack in (mt5.encoder_tpl, mt5.decoder_tpl):
    stack.unroll_in_decode = opts.mt5_decode_unrolled
    stack.block_tpl.attention_tpl.fuse_qkv = opts.mt5_fused
    stack.block_tpl.ff_tpl.fuse_gated_projections = opts.mt5_fused
  if opts.mt5_remat != 'default':
    for stack in (mt5.encoder_tpl, mt5.decoder_tpl):
      stack.checkpoint_policy = _remat_policy(opts.mt5_remat)
  cfg = pali.pali_model(vit, mt5, freeze_vit=False)
  if opts.fprop_dtype != 'float32':
    cfg.fprop_dtype = getattr(jnp, opts.fprop_dtype)
  return cfg


def dims(spec: BenchSpec) -> dict[str, int]:
  """Every size the FLOP count needs, from the library's size tables."""
  size, patch = vit_configs.parse_variant(spec.vit)
  d, n_enc, n_dec, f, heads, dkv = mt5_configs.MT5_SIZES[spec.mt5]
  return dict(
    vit_width=size.width,
    vit_depth=size.depth,
    vit_mlp=size.mlp_dim,
    patch=patch,
    n_visual=(spec.image_size // patch) ** 2,
    d_model=d,
    enc_layers=n_enc,
    dec_layers=n_dec,
    d_ff=f,
    heads=heads,
    d_kv=dkv,
  )
