"""Pax checkpoints of PaLI: write one from converted weights, read one back.

`convert_to_pax` builds the experiment's full Pax TrainState (step 0, fresh
optimizer state), puts the converted mT5 / ViT weights into it and saves it
with paxml's own checkpointer (GDA / orbax, the layout `paxml.main` writes).
Running `paxml.main --exp=EXP --job_log_dir=DIR` on that DIR then restores it
and trains on from there, exactly as it resumes its own checkpoints.
"""

import json
import os
from typing import Any

import jax
import numpy as np
from absl import logging
from etils import epath
from paxml import checkpoints, trainer_lib
from paxml.checkpoint_types import CheckpointType
from praxis import base_layer

from pali_pax import batch as batch_lib
from pali_pax import checkpoint_integrity
from pali_pax.convert import tree
from pali_pax.fiddle_configs import sharding

METADATA_FILE = 'pali_pax.json'


def _experiment(name: str, overrides: dict[str, Any] | None = None) -> Any:
  from pali_pax.fiddle_configs import registry

  return registry.get_experiment(name)(**(overrides or {}))


def _jax_task(exp: Any) -> Any:
  """The experiment's SingleTask on one device (saved arrays are global anyway)."""
  task_p = exp.task()
  task_p.model = sharding.unsharded(task_p.model)
  task_p.train.init_from_checkpoint_rules = {}
  return base_layer.instantiate(task_p)


def _state_metadata(jax_task: Any, exp: Any) -> Any:
  """paxml's TrainStateMetadata (abstract shapes; nothing is allocated)."""
  return trainer_lib.create_train_state_metadata(jax_task, batch_lib.batch_specs(exp.IMAGE_SIZE))


def _replace(params: dict, name: str, new: dict, source: str) -> dict:
  """Swaps the `name` sub-tree for `new`, checking it fits exactly."""
  if name not in params:
    raise tree.CheckpointMismatchError(f'{source}: the model has no {name!r} component')
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
  from pali_pax.convert import load_mt5, load_vit

  experiment = _experiment(exp, overrides)
  ckpt_dir = epath.Path(job_log_dir) / 'checkpoints'
  if ckpt_dir.exists() and any(ckpt_dir.iterdir()):
    raise FileExistsError(f'{ckpt_dir} already holds checkpoints; choose a new job_log_dir')
  # Convert first: a mismatched checkpoint fails before the (slow) initialisation.
  model_cfg = experiment.model_config()
  loaded = {}
  if mt5 is not None:
    loaded['mt5'] = (load_mt5(mt5, model_cfg.mt5_tpl), mt5)
  if vit is not None:
    loaded['vit'] = (load_vit(vit, model_cfg.vit_tpl, image_size=experiment.IMAGE_SIZE), vit)
  jax_task = _jax_task(experiment)
  meta = _state_metadata(jax_task, experiment)
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
  checkpoint_integrity.install()  # the step gets checksums, like those the train loop saves
  checkpoints.save_checkpoint(
    state,
    ckpt_dir,
    checkpoint_type=CheckpointType.GDA,
    train_state_unpadded_shape_dtype_struct=meta.unpadded_global_shapes,
  )
  write_metadata(job_log_dir, exp, overrides, sources={'mt5': mt5, 'vit': vit})
  return os.fspath(ckpt_dir / 'checkpoint_00000000')


def write_metadata(
  job_log_dir: str, exp: str, overrides: dict | None, sources: dict | None = None
) -> None:
  """Records which experiment a job dir belongs to (read by `from_checkpoint`)."""
  os.makedirs(job_log_dir, exist_ok=True)
  with open(os.path.join(job_log_dir, METADATA_FILE), 'w') as f:
    json.dump({'experiment': exp, 'overrides': overrides or {}, 'sources': sources or {}}, f)


def load_model_params(job_dir: str, experiment: str | None = None) -> tuple[Any, dict]:
  """(experiment instance, `params` of the latest checkpoint) of a paxml job dir."""
  job_dir = job_dir.rstrip('/')
  if os.path.basename(job_dir) == 'checkpoints':
    job_dir = os.path.dirname(job_dir)
  overrides: dict[str, Any] = {}
  meta_path = os.path.join(job_dir, METADATA_FILE)
  if experiment is None:
    if not os.path.exists(meta_path):
      raise ValueError(f'{job_dir} has no {METADATA_FILE}; pass experiment=NAME')
    with open(meta_path) as f:
      meta = json.load(f)
    experiment, overrides = meta['experiment'], meta.get('overrides', {})
  exp = _experiment(experiment, overrides)
  step = intact_latest_step(job_dir)
  if step is None:
    raise FileNotFoundError(f'{job_dir} has no checkpoint (looked in {job_dir}/checkpoints)')
  meta = _state_metadata(_jax_task(exp), exp)
  restored = checkpoints.restore_checkpoint(
    meta.padded_global_shapes,
    os.path.join(job_dir, 'checkpoints'),
    step=step,
    checkpoint_type=CheckpointType.GDA,
    state_unpadded_shape_dtype_struct=meta.unpadded_global_shapes,
  )
  params = jax.tree_util.tree_map(np.asarray, restored.mdl_vars['params'])
  return exp, params


def latest_step(job_dir: str) -> int | None:
  """Step of the newest finished checkpoint in a job dir (orbax tmp dirs skipped), or None."""
  steps = checkpoint_integrity.step_dirs(os.path.join(job_dir, 'checkpoints'))
  return steps[-1][0] if steps else None


def intact_latest_step(job_dir: str) -> int | None:
  """Newest step whose checkpoint verifies (`checkpoint_integrity.verify_step`), or None.

  Corrupt newer steps are logged with their path and problems and skipped
  (left in place: only training moves them aside).
  """
  for step, path in reversed(checkpoint_integrity.step_dirs(os.path.join(job_dir, 'checkpoints'))):
    problems, _ = checkpoint_integrity.verify_step(path)
    if not problems:
      return step
    logging.error('skipping corrupt checkpoint %s:\n  %s', path, '\n  '.join(problems))
  return None
