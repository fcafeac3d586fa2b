"""A PaliModel config and its params straight from public mT5 / ViT checkpoints.

    cfg, params = load_components(mt5='mt5-base/', vit='vit_g14.npz', seed=0)
    model = base_layer.instantiate(cfg)
    model.apply({'params': params}, batch, method=model.compute_predictions)

The sizes come from the checkpoints themselves (HF config.json, or the array
shapes of a T5X checkpoint / big_vision .npz); the projection between the two
(`fusion`) is freshly initialised from `seed`.
"""

import re
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from praxis import base_layer, pax_fiddle

from pali_pax import batch as batch_lib
from pali_pax import model as model_lib
from pali_pax.convert import load_mt5, load_vit, mt5_t5x, vit_hf
from pali_pax.convert.mt5 import detect_format, mt5_config_from_hf
from pali_pax.convert.tree import CheckpointMismatchError
from pali_pax.fiddle_configs import mt5 as mt5_configs
from pali_pax.layers import mt5 as mt5_layers
from pali_pax.layers.vit import VisionTransformer

# HF SigLIP vision defaults for fields `save_pretrained` may omit.
_HF_VIT_DEFAULTS = {'num_hidden_layers': 12, 'intermediate_size': 3072}
_BV_POSEMB = (
  'pos_embedding',
  'Transformer/pos_embedding',
  'Transformer/posembed_input/pos_embedding',
)


def _t5x_shape(value: Any, ckpt_dir: str) -> tuple[int, ...]:
  """Shape of an inline array or a tensorstore spec (read from its metadata if present)."""
  if isinstance(value, Mapping):
    shape = (value.get('metadata') or {}).get('shape')
    return tuple(shape) if shape is not None else mt5_t5x.read_ts_array(value, ckpt_dir).shape
  return np.shape(value)


def mt5_config_from_t5x(path: str) -> pax_fiddle.Config[mt5_layers.Mt5EncoderDecoder]:
  """`Mt5EncoderDecoder` config whose sizes are read off a T5X checkpoint's arrays.

  vocab / d_model from token_embedder/embedding [V, D], d_ff from mlp/wi_0
  [D, F], heads and buckets from relpos_bias/rel_embedding [H, K], layers from
  the `layers_i` keys, d_kv = query width / heads. The max distance is not
  stored; mT5's 128 is assumed.
  """
  target, ckpt_dir = mt5_t5x.read_t5x_target(path)

  def shape(name: str) -> tuple[int, ...]:
    if name not in target:
      raise CheckpointMismatchError(f'{path}: T5X checkpoint has no {name}')
    return _t5x_shape(target[name], ckpt_dir)

  def layers(stack: str) -> int:
    found = {int(m[1]) for k in target if (m := re.match(rf'{stack}/layers_(\d+)/', k))}
    return max(found) + 1 if found else 0

  vocab, d_model = shape(mt5_t5x.EMBEDDING)
  heads, buckets = shape('encoder/relpos_bias/rel_embedding')
  return mt5_configs.mt5_config(
    'small',
    vocab_size=vocab,
    relative_attention_num_buckets=buckets,
    model_dims=d_model,
    num_encoder_layers=layers('encoder'),
    num_decoder_layers=layers('decoder'),
    hidden_dims=shape('encoder/layers_0/mlp/wi_0/kernel')[1],
    num_heads=heads,
    dim_per_head=shape('encoder/layers_0/attention/query/kernel')[1] // heads,
  )


def vit_config_from_checkpoint(path: str) -> pax_fiddle.Config[VisionTransformer]:
  """`VisionTransformer` config (learned posemb, scanned) read off a ViT checkpoint.

  HF directory: its (SigLIP-style) config.json. big_vision .npz: patch / width
  from embedding/kernel [p, p, 3, D], grid from pos_embedding [1, N, D] (a
  class-token row is ignored), depth from the encoderblock_i count, mlp from
  Dense_0/kernel [D, F], heads from query/kernel [D, H, hd].
  """
  if not str(path).endswith('.npz'):
    hf = {**_HF_VIT_DEFAULTS, **vit_hf.read_vision_config(str(path))}
    dims = dict(
      image_size=int(hf['image_size']),
      patch_size=int(hf['patch_size']),
      width=int(hf['hidden_size']),
      depth=int(hf['num_hidden_layers']),
      mlp_dim=int(hf['intermediate_size']),
      num_heads=int(hf['num_attention_heads']),
      layer_norm_epsilon=float(hf['layer_norm_eps']),
    )
  else:
    from pali_pax.convert import vit_big_vision

    with np.load(path, allow_pickle=False) as npz:
      shapes = {k: npz[k].shape for k in npz.files}
    pre = vit_big_vision.find_prefix(list(shapes), str(path))
    patch, _, _, width = shapes[pre + 'embedding/kernel']
    pos = [shapes[pre + k] for k in _BV_POSEMB if pre + k in shapes]
    if not pos:
      raise CheckpointMismatchError(f'{path}: no pos_embedding, cannot tell the image size')
    n = pos[0][1] if round(np.sqrt(pos[0][1])) ** 2 == pos[0][1] else pos[0][1] - 1  # cls row
    block_re = re.compile(re.escape(pre) + r'Transformer/encoderblock_(\d+)/')
    blocks = {m[1] for k in shapes if (m := block_re.match(k))}
    block = f'{pre}Transformer/encoderblock_0/'
    dims = dict(
      image_size=round(np.sqrt(n)) * patch,
      patch_size=patch,
      width=width,
      depth=len(blocks),
      mlp_dim=shapes[block + 'MlpBlock_0/Dense_0/kernel'][1],
      num_heads=shapes[block + 'MultiHeadDotProductAttention_0/query/kernel'][1],
    )
  return pax_fiddle.Config(VisionTransformer, name='vit', scan=True, posemb='learn', **dims)


def model_config(mt5: str, vit: str | None = None) -> pax_fiddle.Config[model_lib.PaliModel]:
  """The PaliModel config (unsharded, ViT not frozen) whose sizes the checkpoints give.

  Args:
    mt5: HF mT5 directory or T5X checkpoint (file, step dir or model dir).
    vit: big_vision .npz or HF SigLIP / ViT directory; None: text only (`vit_tpl=None`).
  """
  mt5_cfg = mt5_config_from_hf(mt5) if detect_format(mt5) == 'hf' else mt5_config_from_t5x(mt5)
  vit_cfg = vit_config_from_checkpoint(vit) if vit is not None else None
  return pax_fiddle.Config(model_lib.PaliModel, name='pali', vit_tpl=vit_cfg, mt5_tpl=mt5_cfg)


def load_components(
  mt5: str, vit: str | None = None, seed: int = 0
) -> tuple[pax_fiddle.Config[model_lib.PaliModel], dict[str, Any]]:
  """(PaliModel config, `params`) from an mT5 checkpoint and an optional ViT one.

  Args:
    mt5: HF mT5 directory or T5X checkpoint (file, step dir or model dir).
    vit: big_vision .npz or HF SigLIP / ViT directory; None gives a text-only
      model (`vit_tpl=None`, no `vit` / `fusion` params).
    seed: PRNG seed of the parameters no checkpoint provides (`fusion`).

  Returns:
    The config (unsharded, ViT not frozen) and a nested dict of float32 numpy
    arrays: `mt5` and `vit` as converted, `fusion` freshly initialised.

  Raises:
    CheckpointMismatchError / ValueError: unreadable or inconsistent checkpoints.
  """
  cfg = model_config(mt5, vit)
  params: dict[str, Any] = {'mt5': load_mt5(mt5, cfg.mt5_tpl)}
  if vit is not None:
    params['vit'] = load_vit(vit, cfg.vit_tpl)
    params['fusion'] = _init_fusion(cfg, seed)
  return cfg, params


def _init_fusion(cfg: pax_fiddle.Config[model_lib.PaliModel], seed: int) -> dict[str, Any]:
  """`fusion` params of a full `PaliModel.init(seed)`.

  Only the fusion subtree leaves the jitted init, so XLA drops the rest of it:
  the values equal a full init's without materialising the ViT and mT5.
  """
  model = base_layer.instantiate(cfg)
  batch = batch_lib.dummy_batch(cfg.vit_tpl.image_size)

  def init(key: jax.Array) -> Any:
    rngs = {'params': key, 'random': jax.random.fold_in(key, 1)}
    return model.init(rngs, batch, method=model.compute_predictions)['params']['fusion']

  fusion = jax.jit(init)(jax.random.PRNGKey(seed))
  return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), fusion)
