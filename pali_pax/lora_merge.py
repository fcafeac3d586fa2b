"""`pali-pax merge`: a LoRA job dir -> a plain job dir with the adapters folded in.

Each adapter pair becomes part of its base weight, W' = W + (alpha / r) A B
(`layers.lora.fold_params`), and the job dir written (checkpoint + pali_pax.json)
records the same experiment with TRAINABLE='all' and no INIT_FROM: a plain model
that every command (predict, eval, export, serve, INIT_FROM of a new job) loads
like any other job, with no LoRA code involved.
"""

import os
from typing import Any

import jax
import numpy as np
from absl import logging
from paxml import checkpoints
from paxml.checkpoint_types import CheckpointType

from pali_pax import job_config
from pali_pax.checkpoint import job_meta, layout, reading, saving
from pali_pax.core import errors
from pali_pax.layers import lora

# What the merged job records over the LoRA job's overrides: no adapters, nothing to init from.
PLAIN = {'TRAINABLE': 'all', 'INIT_FROM': None}


def merged_params(exp: Any, params: dict) -> dict:
  """The LoRA params of `exp` with every adapter folded into its base weight.

  Raises:
    ConfigError: `exp` has no LoRA adapters (nothing to merge).
  """
  if not exp.uses_lora():
    raise errors.ConfigError(
      f'{type(exp).__name__} has no LoRA adapters (TRAINABLE={exp.trainable()!r}): nothing to merge'
    )
  folded, count = lora.fold_params(params, exp.LORA_ALPHA)
  if not count:
    raise errors.CheckpointMismatchError('the checkpoint holds no lora_a / lora_b variables')
  logging.info('folded %d LoRA adapters (alpha %s)', count, exp.LORA_ALPHA)
  return folded


def merge(job_dir: str, out_dir: str, step: int | None = None) -> str:
  """Writes OUT_DIR/checkpoints/checkpoint_<step> and OUT_DIR/pali_pax.json; returns the step dir.

  Args:
    job_dir: a LoRA job dir (its pali_pax.json names the experiment).
    out_dir: the new job dir (must not hold checkpoints yet).
    step: the step to merge; None: the newest intact one.

  Raises:
    FileExistsError: OUT_DIR already holds checkpoints.
    ConfigError: the job is not a LoRA job.
  """
  ckpt_dir = layout.checkpoint_dir(out_dir)
  if ckpt_dir.exists() and any(ckpt_dir.iterdir()):
    raise FileExistsError(f'{ckpt_dir} already holds checkpoints; choose a new --out')
  name, overrides = job_meta.read(job_dir)
  exp = job_config.build(name, overrides)
  step, _ = reading.find_step(layout.checkpoint_dir(job_dir), step)
  params = merged_params(exp, reading.restore_params(exp, job_dir, step))
  plain_overrides = {**overrides, **PLAIN}
  plain = job_config.build(name, plain_overrides)
  # A fresh state of the plain model (its optimizer slots), holding the merged weights.
  _, meta, state = reading.fresh_train_state(plain)
  want = jax.tree_util.tree_structure(state.mdl_vars['params'])
  if jax.tree_util.tree_structure(params) != want:
    raise errors.CheckpointMismatchError(f'{job_dir}: the merged params do not fit {name}')
  params = jax.tree_util.tree_map(lambda x: jax.numpy.asarray(np.asarray(x)), params)
  state = state.replace(
    step=jax.numpy.asarray(step, state.step.dtype), mdl_vars={**state.mdl_vars, 'params': params}
  )
  saving.install()  # checksummed, like the train loop's steps
  checkpoints.save_checkpoint(
    state,
    ckpt_dir,
    checkpoint_type=CheckpointType.GDA,
    train_state_unpadded_shape_dtype_struct=meta.unpadded_global_shapes,
  )
  job_config.write(
    out_dir, name, plain_overrides, merged_from={'job': os.path.abspath(job_dir), 'step': step}
  )
  return os.fspath(layout.step_path(ckpt_dir, step))
