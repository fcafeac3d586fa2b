"""A PaliModel config and its params straight from public mT5 / ViT checkpoints.

    cfg, params = load_components(mt5='mt5-base/', vit='vit_g14.npz', seed=0)
    model = base_layer.instantiate(cfg)
    model.apply({'params': params}, batch, method=model.compute_predictions)

The sizes come from the checkpoints themselves (HF config.json, or the array
shapes of a T5X checkpoint / big_vision .npz); the projection between the two
(`fusion`) is freshly initialised from `seed`.
"""

from typing import Any

import jax
import numpy as np
from praxis import base_layer, pax_fiddle

from pali_pax import model as model_lib
from pali_pax.convert.mt5 import load_mt5, mt5_config_from_checkpoint
from pali_pax.convert.vit import load_vit, vit_config_from_checkpoint
from pali_pax.core import batch as batch_lib
from pali_pax.fiddle_configs import pali


def model_config(mt5: str, vit: str | None = None) -> pax_fiddle.Config[model_lib.PaliModel]:
  """The PaliModel config (unsharded, ViT not frozen) whose sizes the checkpoints give.

  Args:
    mt5: HF mT5 directory or T5X checkpoint (file, step dir or model dir).
    vit: big_vision .npz or HF SigLIP / ViT directory; None: text only (`vit_tpl=None`).
  """
  mt5_cfg = mt5_config_from_checkpoint(mt5)
  vit_cfg = vit_config_from_checkpoint(vit) if vit is not None else None
  return pali.pali_model(vit_cfg, mt5_cfg, freeze_vit=False)


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
    FileFormatError: an unreadable checkpoint file (named).
    CheckpointMismatchError: inconsistent checkpoints (the tensor named).
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
