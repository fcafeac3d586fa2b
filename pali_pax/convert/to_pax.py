"""A Pax checkpoint from public-format mT5 / ViT checkpoints (`convert_to_pax`).

It builds the experiment's full Pax TrainState (step 0, fresh optimizer state),
puts the converted mT5 / ViT weights into it and saves it with paxml's own
checkpointer (GDA / orbax, the layout `paxml.main` writes, with checksums).
Running `pali-pax train --exp=EXP --job_dir=DIR` on that DIR then restores it and
trains on from there, exactly as it resumes its own checkpoints.
"""

import os
from typing import Any

import jax
import numpy as np
from absl import logging
from paxml import checkpoints, trainer_lib
from paxml.checkpoint_types import CheckpointType

from pali_pax import job_config
from pali_pax.checkpoint import layout, reading, saving
from pali_pax.convert.mt5 import load_mt5
from pali_pax.convert.vit import load_vit
from pali_pax.core import tree
from pali_pax.core.errors import CheckpointMismatchError


def _replace(params: dict, name: str, new: dict, source: str) -> dict:
  """Swaps the `name` sub-tree for `new`, checking it fits exactly."""
  if name not in params:
    raise CheckpointMismatchError(f'{source}: the model has no {name!r} component')
  checked = tree.fill_tree(params[name], tree.flatten(new), source)
  out = dict(params)
  # jax.Arrays like the rest of the state, so orbax writes every leaf the same way.
  out[name] = jax.tree_util.tree_map(
    lambda old, x: jax.device_put(np.asarray(x, old.dtype)), params[name], checked
  )
  return out


def convert_to_pax(
  exp: str,
  job_log_dir: str,
  mt5: str | None = None,
  vit: str | None = None,
  seed: int = 0,
  overrides: dict[str, Any] | None = None,
) -> str:
  """Writes JOB_LOG_DIR/checkpoints/checkpoint_00000000 for experiment `exp`.

  Args:
    exp: registered experiment name (its model config decides the shapes).
    job_log_dir: the paxml job dir to create.
    mt5: HF mT5 directory or T5X checkpoint directory (None: keep random init).
    vit: big_vision .npz or HF SigLIP / ViT directory; its position embedding
      is resampled to the experiment's IMAGE_SIZE when they differ.
    seed: seed of everything no checkpoint provides (e.g. the projection).
    overrides: experiment attribute overrides (as with `--fdl.ATTR=...`).

  Returns:
    The checkpoint directory written.
  """
  experiment = job_config.build(exp, overrides)
  ckpt_dir = layout.checkpoint_dir(job_log_dir)
  if ckpt_dir.exists() and any(ckpt_dir.iterdir()):
    raise FileExistsError(f'{ckpt_dir} already holds checkpoints; choose a new job_log_dir')
  # Convert first: a mismatched checkpoint fails before the (slow) initialisation.
  model_cfg = experiment.model_config()
  loaded = {}
  if mt5 is not None:
    loaded['mt5'] = (load_mt5(mt5, model_cfg.mt5_tpl), mt5)
  if vit is not None:
    loaded['vit'] = (load_vit(vit, model_cfg.vit_tpl, image_size=experiment.IMAGE_SIZE), vit)
  jax_task = reading.jax_task(experiment)
  meta = reading.train_state_metadata(jax_task, experiment)
  state, _ = trainer_lib.initialize_model_state(
    jax_task,
    jax.random.PRNGKey(seed),
    meta.input_shape_dtype,
    do_init_checkpoint_rules=False,
    var_weight_hparams=meta.var_weight_hparams,
  )
  params = dict(state.mdl_vars['params'])
  for name, (tree_, source) in loaded.items():
    params = _replace(params, name, tree_, source)
  state = state.replace(mdl_vars={**state.mdl_vars, 'params': params})
  logging.info('saving converted Pax checkpoint to %s', ckpt_dir)
  saving.install()  # the step gets checksums, like those the train loop saves
  checkpoints.save_checkpoint(
    state,
    ckpt_dir,
    checkpoint_type=CheckpointType.GDA,
    train_state_unpadded_shape_dtype_struct=meta.unpadded_global_shapes,
  )
  job_config.write(job_log_dir, exp, overrides, sources={'mt5': mt5, 'vit': vit})
  return os.fspath(layout.step_path(ckpt_dir, 0))
