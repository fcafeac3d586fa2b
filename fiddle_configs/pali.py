"""PaLI model sizes: which ViT and which mT5, as Fiddle graphs.

size    ViT        mT5      published size
tiny    tiny/8     tiny     (tests; 32 px images)
mini    mini/8     mini     (the CPU demo, width 64; 32 px images)
3b      G/14       large    PaLI-3B  = ViT-G (1.8B) + mT5-Large (1.2B)
15b     G/14       xxl      PaLI-15B = ViT-G (1.8B) + mT5-XXL (13B)
17b     e/14       xxl      PaLI-17B = ViT-e (3.9B) + mT5-XXL (13B)
"""

from praxis import pax_fiddle

from pali_pax import model
from pali_pax.core import batch as batch_lib
from pali_pax.core import errors
from pali_pax.fiddle_configs import mt5 as mt5_configs
from pali_pax.fiddle_configs import vit as vit_configs
from pali_pax.layers import mt5 as mt5_lib
from pali_pax.layers import vit as vit_lib

# size: (ViT variant, mT5 size)
PALI_SIZES = {
  'tiny': ('tiny/8', 'tiny'),
  'mini': ('mini/8', 'mini'),
  '3b': ('G/14', 'large'),
  '15b': ('G/14', 'xxl'),
  '17b': ('e/14', 'xxl'),
}


def pali_model(
  vit_tpl: pax_fiddle.Config[vit_lib.VisionTransformer] | None,
  mt5_tpl: pax_fiddle.Config[mt5_lib.Mt5EncoderDecoder],
  freeze_vit: bool,
) -> pax_fiddle.Config[model.PaliModel]:
  """The one place a PaliModel config is assembled (experiments, converters, benchmarks).

  Args:
    vit_tpl: the ViT (`vit_configs.vit_config`); None: a text-only model.
    mt5_tpl: the mT5 encoder-decoder (`mt5_configs.mt5_config`).
    freeze_vit: no gradient into the ViT (PaLI's main pretraining).
  """
  return pax_fiddle.Config(
    model.PaliModel, name='pali', vit_tpl=vit_tpl, mt5_tpl=mt5_tpl, freeze_vit=freeze_vit
  )


def pali_config(
  size: str = '3b',
  image_size: int = 224,
  vocab_size: int = batch_lib.MT5_VOCAB_SIZE,
  freeze_vit: bool = True,
  vit: str | None = None,
) -> pax_fiddle.Config[model.PaliModel]:
  """The PaliModel graph of one PaLI size (unsharded; see `sharding.shard_pali`).

  `vit` ('mini/8', 'S/16', ...) replaces the size's ViT variant; its width need not
  match the mT5's (the fusion layer projects).
  """
  if size not in PALI_SIZES:
    raise errors.ConfigError(f'unknown PaLI size {size!r}; valid: {sorted(PALI_SIZES)}')
  vit_variant, mt5_size = PALI_SIZES[size]
  return pali_model(
    vit_configs.vit_config(vit or vit_variant, image_size=image_size),
    mt5_configs.mt5_config(mt5_size, vocab_size=vocab_size),
    freeze_vit,
  )
