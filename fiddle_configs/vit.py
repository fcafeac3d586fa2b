"""Fiddle configs of the ViT image encoder: the big_vision size table.

`vit_config('G/14', image_size=224)` is PaLI-3B/15B's encoder (~1.8B params),
`vit_config('e/14')` PaLI-17B's (~3.9B). 'tiny' is for tests, 'mini' for the CPU demo.
"""

from typing import NamedTuple

from praxis import pax_fiddle

from pali_pax.core import errors
from pali_pax.layers.vit import VisionTransformer

__all__ = ['VIT_VARIANTS', 'ViTSize', 'parse_variant', 'vit_config']


class ViTSize(NamedTuple):
  """Width D, depth L, MLP hidden size F and attention heads of one variant."""

  width: int
  depth: int
  mlp_dim: int
  num_heads: int


# Reference: big_vision models/vit.py decode_variant (Zhai et al. 2021, Table 2;
# ViT-e: Chen et al. 2022, PaLI).
VIT_VARIANTS: dict[str, ViTSize] = {
  'tiny': ViTSize(32, 2, 64, 4),
  'mini': ViTSize(64, 2, 128, 4),
  'Ti': ViTSize(192, 12, 768, 3),
  'S': ViTSize(384, 12, 1536, 6),
  'M': ViTSize(512, 12, 2048, 8),
  'B': ViTSize(768, 12, 3072, 12),
  'L': ViTSize(1024, 24, 4096, 16),
  'So400m': ViTSize(1152, 27, 4304, 16),
  'H': ViTSize(1280, 32, 5120, 16),
  'g': ViTSize(1408, 40, 6144, 16),
  'G': ViTSize(1664, 48, 8192, 16),
  'e': ViTSize(1792, 56, 15360, 16),
}
DEFAULT_PATCH = 14


def parse_variant(variant: str) -> tuple[ViTSize, int]:
  """'G/14' -> (ViTSize of G, 14); a bare name uses patch 14.

  Raises:
    ValueError: unknown name or malformed patch size (lists the valid names).
  """
  name, _, patch = variant.partition('/')
  if name not in VIT_VARIANTS:
    raise errors.ConfigError(
      f'unknown ViT variant {variant!r}; valid names: {", ".join(VIT_VARIANTS)} '
      "(optionally with '/PATCH', e.g. 'G/14')"
    )
  if not patch:
    return VIT_VARIANTS[name], DEFAULT_PATCH
  if not patch.isdigit() or int(patch) <= 0:
    raise errors.ConfigError(f'bad patch size in ViT variant {variant!r}: expected e.g. {name}/14')
  return VIT_VARIANTS[name], int(patch)


def vit_config(
  variant: str = 'G/14',
  image_size: int = 224,
  posemb: str = 'learn',
  *,
  dropout: float = 0.0,
  scan: bool = True,
  name: str = 'vit',
) -> pax_fiddle.Config[VisionTransformer]:
  """Config of a VisionTransformer variant.

  Args:
    variant: 'NAME/PATCH' with NAME in VIT_VARIANTS ('G/14', 'e/14', 'B/16',
      'tiny/7', ...).
    image_size: input resolution in pixels (224, or 588 for PaLI's high-res phase).
    posemb: 'learn' or 'sincos2d'.
    dropout: dropout rate (big_vision places).
    scan: scan the blocks with praxis Repeat (compile one block; params get a
      leading [depth] axis). Default True: large variants compile much faster.
    name: layer name.

  Returns:
    An unsharded pax_fiddle.Config[VisionTransformer] (see
    `fiddle_configs.sharding.shard_vit`).
  """
  size, patch = parse_variant(variant)
  return pax_fiddle.Config(
    VisionTransformer,
    name=name,
    image_size=image_size,
    patch_size=patch,
    width=size.width,
    depth=size.depth,
    mlp_dim=size.mlp_dim,
    num_heads=size.num_heads,
    posemb=posemb,
    dropout=dropout,
    scan=scan,
  )
