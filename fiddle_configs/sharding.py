"""SPMD sharding of the PaLI configs: the device mesh and where every array is split.

The layers only declare their sharding fields (praxis'
`weight_split_dims_mapping` / `activation_split_dims_mapping`); this module is
the one place that fills them, and the one place that names the mesh axes.

Mesh axes (`MESH_AXIS_NAMES`): 'replica' (pure data replicas), 'data' (data
parallelism) and 'mdl' (model parallelism). The layout is Megatron's: the
batch is split over ('replica', 'data'); attention heads, MLP hidden units and
the vocabulary over 'mdl'; small weights (norms, biases, position bias) are
replicated. With `fsdp=True` the weights' model dimension D is also split over
'data' (fully sharded data parallelism: each data-parallel replica keeps
1/data of every weight and of its optimizer state, and XLA all-gathers a
layer's weights before use).

Every `shard_*` function has the same signature: `(cfg, ici_mesh_shape=None,
dcn_mesh_shape=None, *, fsdp=False) -> cfg` (modified in place). Given a mesh
shape it also sets the mesh on `cfg`; without one the mesh is left to a parent
layer (praxis children inherit `ici_mesh_shape` / `mesh_axis_names`).

`pali_pax.core.params.unsharded(cfg)` is the way back: a copy with no mesh anywhere, for code that
runs on one device or only traces shapes (checkpoint conversion, parameter
counts, the Predictor).
"""

from collections.abc import Sequence

from praxis import base_layer, pax_fiddle

from pali_pax import model
from pali_pax.core import errors
from pali_pax.layers import mt5, vit

__all__ = [
  'BATCH_AXES',
  'MDL_AXIS',
  'MESH_AXIS_NAMES',
  'shard_mt5',
  'shard_pali',
  'shard_vit',
]

MESH_AXIS_NAMES = ('replica', 'data', 'mdl')
BATCH_AXES = ('replica', 'data')
DATA_AXIS = 'data'
MDL_AXIS = 'mdl'

LayerTpl = pax_fiddle.Config[base_layer.BaseLayer]
MeshShape = Sequence[int] | None


def _set_mesh(cfg: LayerTpl, ici_mesh_shape: MeshShape, dcn_mesh_shape: MeshShape) -> None:
  """Puts the [replica, data, mdl] mesh on `cfg` when a shape is given."""
  if ici_mesh_shape is None:
    if dcn_mesh_shape is not None:
      raise errors.ConfigError('dcn_mesh_shape needs ici_mesh_shape as well')
    return
  for name, shape in (('ici_mesh_shape', ici_mesh_shape), ('dcn_mesh_shape', dcn_mesh_shape)):
    if shape is not None and len(shape) != len(MESH_AXIS_NAMES):
      raise errors.ConfigError(f'{name} {list(shape)} must have 3 axes {MESH_AXIS_NAMES}')
  cfg.ici_mesh_shape = list(ici_mesh_shape)
  cfg.dcn_mesh_shape = list(dcn_mesh_shape) if dcn_mesh_shape is not None else None
  cfg.mesh_axis_names = list(MESH_AXIS_NAMES)


def _fsdp_axis(fsdp: bool) -> str | None:
  return DATA_AXIS if fsdp else None


def _shard_attention(att: LayerTpl, fsdp: bool) -> None:
  """Projections [D, N, H]: heads over mdl. Activations [B, T, N, H] / [B, T, D]."""
  b, m = BATCH_AXES, MDL_AXIS
  att.weight_split_dims_mapping.proj = [_fsdp_axis(fsdp), m, None]
  att.activation_split_dims_mapping.blnh = [b, None, m, None]
  att.activation_split_dims_mapping.bld = [b, None, None]


def _shard_feed_forward(ff: LayerTpl, fsdp: bool) -> None:
  """praxis TransformerFeedForward: [D, F] and [F, D], hidden units F over mdl."""
  b, m, d = BATCH_AXES, MDL_AXIS, _fsdp_axis(fsdp)
  ff.weight_split_dims_mapping.ffn0 = [d, m]
  ff.weight_split_dims_mapping.ffn1 = [m, d]
  ff.activation_split_dims_mapping.ffn0 = [b, None, m]
  ff.activation_split_dims_mapping.ffn1 = [b, None, None]


def shard_vit(
  cfg: pax_fiddle.Config[vit.VisionTransformer],
  ici_mesh_shape: MeshShape = None,
  dcn_mesh_shape: MeshShape = None,
  *,
  fsdp: bool = False,
) -> pax_fiddle.Config[vit.VisionTransformer]:
  """Shards a VisionTransformer config: its own fields and its transformer template."""
  _set_mesh(cfg, ici_mesh_shape, dcn_mesh_shape)
  b, d = BATCH_AXES, _fsdp_axis(fsdp)
  wp, ap = cfg.weight_split_dims_mapping, cfg.activation_split_dims_mapping
  wp.patch = [None, None, None, d]
  wp.pos = [None, None, d]
  ap.bhwc = [b, None, None, None]
  ap.bld = [b, None, None]
  block = cfg.transformer_tpl.transformer_layer_params_tpl
  _shard_attention(block.tr_atten_tpl, fsdp)
  _shard_feed_forward(block.tr_fflayer_tpl, fsdp)
  return cfg


def shard_mt5(
  cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder],
  ici_mesh_shape: MeshShape = None,
  dcn_mesh_shape: MeshShape = None,
  *,
  fsdp: bool = False,
) -> pax_fiddle.Config[mt5.Mt5EncoderDecoder]:
  """Shards an Mt5EncoderDecoder config: embedding, both T5 stacks, output projection."""
  _set_mesh(cfg, ici_mesh_shape, dcn_mesh_shape)
  b, m, d = BATCH_AXES, MDL_AXIS, _fsdp_axis(fsdp)
  cfg.embedding_tpl.weight_split_dims_mapping.wt = [m, d]
  cfg.embedding_tpl.activation_split_dims_mapping.emb_out_split_dims_mapping = [b, None, None]
  cfg.softmax_tpl.weight_split_dims_mapping.wt = [d, m]
  cfg.softmax_tpl.activation_split_dims_mapping.out = [b, None, m]
  for stack in (cfg.encoder_tpl, cfg.decoder_tpl):
    stack.activation_split_dims_mapping.bld = [b, None, None]
    stack.relative_bias_tpl.weight_split_dims_mapping.wt = [None, m]
    stack.relative_bias_tpl.activation_split_dims_mapping.out = [None, m, None, None]
    att = stack.block_tpl.attention_tpl
    _shard_attention(att, fsdp)
    att.activation_split_dims_mapping.bnts = [b, m, None, None]
    _shard_feed_forward(stack.block_tpl.ff_tpl, fsdp)
  return cfg


def shard_pali(
  cfg: pax_fiddle.Config[model.PaliModel],
  ici_mesh_shape: MeshShape = None,
  dcn_mesh_shape: MeshShape = None,
  *,
  fsdp: bool = False,
) -> pax_fiddle.Config[model.PaliModel]:
  """Shards a PaliModel config: ViT, fusion projection and mT5."""
  _set_mesh(cfg, ici_mesh_shape, dcn_mesh_shape)
  if cfg.vit_tpl is not None:  # None: a text-only model
    shard_vit(cfg.vit_tpl, fsdp=fsdp)
  shard_mt5(cfg.mt5_tpl, fsdp=fsdp)
  b, m = BATCH_AXES, MDL_AXIS
  cfg.fusion_tpl.activation_split_dims_mapping.btd = [b, None, m]
  proj = cfg.fusion_tpl.projection_tpl
  proj.weight_split_dims_mapping.wt = [_fsdp_axis(fsdp), m]
  proj.activation_split_dims_mapping.out = [b, None, m]
  return cfg
