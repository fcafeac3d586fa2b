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

from pali_pax import checkpoint_integrity, job_config
from pali_pax.core import batch as batch_lib
from pali_pax.core import params as params_lib
from pali_pax.core import tree
from pali_pax.core.errors import CheckpointMismatchError, FileFormatError, parsing
from pali_pax.job_config import METADATA_FILE  # noqa: F401  (where the job's metadata lives)

_PARAMS_PREFIX = 'mdl_vars.params.'  # orbax's folder names of the `params` arrays


def _jax_task(exp: Any) -> Any:
  """The experiment's SingleTask on one device (saved arrays are global anyway)."""
  task_p = exp.task()
  task_p.model = params_lib.unsharded(task_p.model)
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

  experiment = job_config.build(exp, overrides)
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
  job_config.write(job_log_dir, exp, overrides, sources={'mt5': mt5, 'vit': vit})
  return os.fspath(ckpt_dir / 'checkpoint_00000000')


def _saved_shapes(step_dir: str) -> dict[str, tuple[int, ...]]:
  """{'mt5.token_emb.emb_var': shape} of the `params` arrays saved in one checkpoint.

  Read from the zarr metadata orbax writes (state/mdl_vars.params.<name>/.zarray).
  """
  state = os.path.join(step_dir, 'state')
  if not os.path.isdir(state):
    raise FileFormatError(f'{step_dir} is not a Pax checkpoint (no state/ folder)')
  out = {}
  for name in os.listdir(state):
    if name.startswith(_PARAMS_PREFIX):
      path = os.path.join(state, name, '.zarray')
      with parsing(path, 'zarr array metadata'), open(path) as f:
        out[name[len(_PARAMS_PREFIX) :]] = tuple(json.load(f)['shape'])
  return out


def check_params_fit(step_dir: str, expected: Any) -> None:
  """CheckpointMismatchError naming the first missing / unexpected / mis-shaped variable."""
  want = {
    '.'.join(str(getattr(k, 'key', k)) for k in path): tuple(leaf.shape)
    for path, leaf in jax.tree_util.tree_flatten_with_path(expected)[0]
  }
  have = _saved_shapes(step_dir)
  for name in sorted(want.keys() - have.keys()):
    raise CheckpointMismatchError(f'{step_dir}: the model variable {name} is not in the checkpoint')
  for name in sorted(have.keys() - want.keys()):
    raise CheckpointMismatchError(f'{step_dir}: checkpoint variable {name} is not in the model')
  for name in sorted(want):
    if want[name] != have[name]:
      raise CheckpointMismatchError(
        f'{step_dir}: variable {name} has shape {have[name]} in the checkpoint but '
        f'{want[name]} in the model'
      )


def load_model_params(
  job_dir: str,
  experiment: str | None = None,
  step: int | None = None,
  overrides: dict[str, Any] | None = None,
) -> tuple[Any, dict]:
  """(experiment instance, `params` of checkpoint `step` (None: latest)) of a paxml job dir.

  The experiment and its overrides come from JOB/pali_pax.json (`job_config`)
  unless `experiment` is given. Raises CheckpointMismatchError naming the variable
  when the checkpoint does not fit that experiment's model.
  """
  job_dir = job_dir.rstrip('/')
  if os.path.basename(job_dir) == 'checkpoints':
    job_dir = os.path.dirname(job_dir)
  if experiment is None:
    experiment, overrides = job_config.read(job_dir)
  exp = job_config.build(experiment, overrides)
  step = intact_latest_step(job_dir) if step is None else step
  step_dir = os.path.join(job_dir, 'checkpoints', f'checkpoint_{step or 0:08d}')
  if step is None or not os.path.isdir(step_dir):
    raise FileNotFoundError(
      f'{job_dir} has no {"intact checkpoint" if step is None else f"checkpoint {step}"} '
      f'(steps: {all_steps(job_dir)})'
    )
  meta = _state_metadata(_jax_task(exp), exp)
  check_params_fit(step_dir, meta.unpadded_global_shapes.mdl_vars['params'])
  restored = checkpoints.restore_checkpoint(
    meta.padded_global_shapes,
    os.path.join(job_dir, 'checkpoints'),
    step=step,
    checkpoint_type=CheckpointType.GDA,
    state_unpadded_shape_dtype_struct=meta.unpadded_global_shapes,
  )
  params = jax.tree_util.tree_map(np.asarray, restored.mdl_vars['params'])
  return exp, params


def all_steps(job_dir: str) -> list[int]:
  """Steps of the finished checkpoints in a job dir, oldest first (orbax tmp dirs skipped)."""
  return [step for step, _ in checkpoint_integrity.step_dirs(os.path.join(job_dir, 'checkpoints'))]


def latest_step(job_dir: str) -> int | None:
  """Step of the newest finished checkpoint in a job dir, or None."""
  steps = all_steps(job_dir)
  return steps[-1] if steps else None


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
