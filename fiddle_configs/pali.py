"""PaLI model sizes: which ViT and which mT5, as Fiddle graphs.

size    ViT        mT5      published size
tiny    tiny/8     tiny     (tests and the CPU demo; 32 px images)
3b      G/14       large    PaLI-3B  = ViT-G (1.8B) + mT5-Large (1.2B)
15b     G/14       xxl      PaLI-15B = ViT-G (1.8B) + mT5-XXL (13B)
17b     e/14       xxl      PaLI-17B = ViT-e (3.9B) + mT5-XXL (13B)
"""

from praxis import pax_fiddle

from pali_pax import batch as batch_lib
from pali_pax import model
from pali_pax.fiddle_configs import mt5 as mt5_configs
from pali_pax.fiddle_configs import vit as vit_configs
from pali_pax.layers.mt5 import set_mt5_sharding
from pali_pax.layers.vit import set_vit_sharding

# size: (ViT variant, mT5 size)
PALI_SIZES = {
  'tiny': ('tiny/8', 'tiny'),
  '3b': ('G/14', 'large'),
  '15b': ('G/14', 'xxl'),
  '17b': ('e/14', 'xxl'),
}

MESH_AXIS_NAMES = ('replica', 'data', 'mdl')


def pali_config(
  size: str = '3b',
  image_size: int = 224,
  vocab_size: int = batch_lib.MT5_VOCAB_SIZE,
  freeze_vit: bool = True,
) -> pax_fiddle.Config[model.PaliModel]:
  """The PaliModel graph of one PaLI size (unsharded; see `shard_pali`)."""
  if size not in PALI_SIZES:
    raise ValueError(f'unknown PaLI size {size!r}; valid: {sorted(PALI_SIZES)}')
  vit_variant, mt5_size = PALI_SIZES[size]
  cfg = pax_fiddle.Config(
    model.PaliModel,
    name='pali',
    vit_tpl=vit_configs.vit_config(vit_variant, image_size=image_size),
    mt5_tpl=mt5_configs.mt5_config(mt5_size, vocab_size=vocab_size),
    freeze_vit=freeze_vit,
  )
  return cfg


def shard_pali(
  cfg: pax_fiddle.Config[model.PaliModel],
  ici_mesh_shape: list[int],
  dcn_mesh_shape: list[int] | None = None,
) -> pax_fiddle.Config[model.PaliModel]:
  """Adds the mesh and Megatron-style sharding to every weight and activation.

  Batch is split over ('replica', 'data'), heads / MLP / vocabulary over 'mdl'.
  """
  if len(ici_mesh_shape) != len(MESH_AXIS_NAMES):
    raise ValueError(f'ici_mesh_shape {ici_mesh_shape} must have 3 axes {MESH_AXIS_NAMES}')
  cfg.ici_mesh_shape = list(ici_mesh_shape)
  cfg.dcn_mesh_shape = list(dcn_mesh_shape) if dcn_mesh_shape else None
  cfg.mesh_axis_names = list(MESH_AXIS_NAMES)
  batch = ('replica', 'data')
  set_vit_sharding(cfg.vit_tpl, batch_axes=batch, mdl_axis='mdl')
  set_mt5_sharding(cfg.mt5_tpl, batch_axes=batch, mdl_axis='mdl')
  cfg.fusion_tpl.activation_split_dims_mapping.btd = [batch, None, 'mdl']
  proj = cfg.fusion_tpl.projection_tpl
  proj.weight_split_dims_mapping.wt = [None, 'mdl']
  proj.activation_split_dims_mapping.out = [batch, None, 'mdl']
  return cfg
