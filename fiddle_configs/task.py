"""PaliTask: the SingleTask of every PaliExperiment; INIT_FROM across resolutions.

paxml's `CheckpointLoadingRules` restore the source checkpoint at the shapes of
the model being trained and assign variables by name; they never compare a
saved shape with the model's (a smaller saved array is read as a slice or
fails deep inside tensorstore). `PaliTask` first picks the step to read as every
checkpoint reader does (`pali_pax.checkpoint.reading.find_step`: the newest
intact one unless the rule names a step; a corrupt newer step is skipped), reads
the shape of every model variable saved there (the zarr metadata, no data) and
compares it with the model's:

* equal shapes: paxml's rule copies the variable exactly;
* the ViT's learned position embedding [1, N, D] saved with another square
  grid (a checkpoint trained at another resolution, e.g. 224 px -> 588 px in
  PaLI's high-resolution phase): the rule skips it; it is read from the
  checkpoint, bilinearly resampled to the model's grid (the converters'
  `resample_posemb`) and placed with the model's sharding, each process
  writing only its own shards (multi-host safe);
* anything else (another shape, a variable the checkpoint lacks): a
  `CheckpointMismatchError` naming the variable, both shapes and the checkpoint.
"""

import re
from typing import Any

import jax
import numpy as np
from absl import logging
from paxml import tasks_lib
from paxml.checkpoint_types import CheckpointType

from pali_pax.checkpoint import layout, reading
from pali_pax.core.errors import CheckpointMismatchError
from pali_pax.fiddle_configs import trainable
from pali_pax.layers.vit import resample_posemb

POSEMB = 'params/vit/pos_embedding'


def posemb_needs_resample(
  saved: dict[str, tuple[int, ...]], model: dict[str, tuple[int, ...]], source: str
) -> bool:
  """Whether only the posemb grid differs; raises for every other mismatch.

  Args:
    saved: variable shapes in the checkpoint (`layout.saved_shapes`).
    model: variable shapes of the model being initialised.
    source: the checkpoint, for the error message.
  """
  missing = sorted(set(model) - set(saved))
  if missing:
    raise CheckpointMismatchError(f'{source} has no variable {missing[0]!r} (missing: {missing})')
  resample = False
  for name, shape in sorted(model.items()):
    old = saved[name]
    if old == shape:
      continue
    if name == POSEMB and _is_square_grid(old) and _is_square_grid(shape) and old[2] == shape[2]:
      resample = True
      continue
    raise CheckpointMismatchError(
      f'{source}: variable {name!r} has shape {list(old)} in the checkpoint but {list(shape)} '
      'in the model (only the ViT position embedding grid may differ: it is resampled)'
    )
  return resample


def _is_square_grid(shape: tuple[int, ...]) -> bool:
  return len(shape) == 3 and shape[0] == 1 and round(np.sqrt(shape[1])) ** 2 == shape[1]


def _flat_leaves(tree: Any) -> dict[str, Any]:
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): x for path, x in leaves}


def _set_leaf(tree: dict, name: str, value: Any) -> None:
  *parents, leaf = name.split('/')
  for key in parents:
    tree = tree[key]
  tree[leaf] = value


class PaliTask(tasks_lib.SingleTask):
  """paxml's SingleTask whose INIT_FROM rules read the intact step, check shapes and
  resample the ViT posemb; it logs what trains when the optimizer state is created."""

  def _log_trainable(self, mdl_vars: Any, var_weight_hparams: Any, opt_states: Any) -> None:
    """Logs trainable / total parameters and the optimizer state's bytes (once per task)."""
    if getattr(self, '_logged_trainable', False):
      return
    s = trainable.summary(mdl_vars, var_weight_hparams, self.learners[0], opt_states)
    logging.info('pali_pax: %s', trainable.describe(s))
    object.__setattr__(self, '_logged_trainable', True)

  def create_opt_states(self, mdl_vars: Any, var_weight_hparams: Any) -> list[Any]:
    """paxml's optimizer state (the unpartitioned start); logs what trains."""
    opt_states = super().create_opt_states(mdl_vars, var_weight_hparams)
    self._log_trainable(mdl_vars, var_weight_hparams, opt_states)
    return opt_states

  def create_train_state_unpadded_shapes(
    self, var_weight_hparams: Any, discard_opt_states: bool = False
  ) -> Any:
    """paxml's TrainState shapes: what `paxml.main`'s partitioned start builds first.

    That path never calls `create_opt_states`, so what trains is logged here.
    """
    state = super().create_train_state_unpadded_shapes(var_weight_hparams, discard_opt_states)
    if not discard_opt_states:
      self._log_trainable(state.mdl_vars, var_weight_hparams, state.opt_states)
    return state

  def apply_init_checkpoint_rules(
    self,
    train_state: Any,
    train_state_provenance: Any,
    train_state_partition_specs: Any = None,
    global_mesh: jax.sharding.Mesh | None = None,
    checkpoint_type: CheckpointType = CheckpointType.FLAX,
  ) -> tuple[Any, Any, bool]:
    all_rules = self.train.init_from_checkpoint_rules
    targets = _flat_leaves(train_state.mdl_vars)
    model_shapes = {name: tuple(x.shape) for name, x in targets.items()}
    resample_from = None
    for ckpt_path, rules in list(all_rules.items()):
      step, step_dir = reading.find_step(ckpt_path, rules.step)
      if layout.step_of(ckpt_path) is None:
        # paxml would restore its own latest step, corrupt or not: pin the one checked here.
        rules = rules._replace(step=step)
      saved = layout.saved_shapes(step_dir)
      # Variables the rule ignores (LoRA adapters) keep their initial values: not required.
      ignored = [re.compile(p) for p in rules.ignore_rules or []]
      wanted = {k: v for k, v in model_shapes.items() if not any(p.match(k) for p in ignored)}
      if posemb_needs_resample(saved, wanted, str(step_dir)):
        # paxml would read it at the model's shape: skip it there, resample it below.
        rules = rules._replace(ignore_rules=[*(rules.ignore_rules or []), re.escape(POSEMB)])
        resample_from = resample_from or step_dir
      all_rules[ckpt_path] = rules
    # Kept before paxml frees the randomly initialised arrays it overwrites.
    posemb = targets.get(POSEMB)
    shape, sharding = (posemb.shape, posemb.sharding) if posemb is not None else (None, None)
    train_state, provenance, update_opt = super().apply_init_checkpoint_rules(
      train_state, train_state_provenance, train_state_partition_specs, global_mesh, checkpoint_type
    )
    if resample_from is not None:
      saved_posemb = layout.read_saved_array(resample_from, POSEMB)
      side = round(np.sqrt(shape[1]))
      new = resample_posemb(saved_posemb, (side, side)).astype(posemb.dtype)
      array = jax.make_array_from_callback(shape, sharding, lambda index: new[index])
      mdl_vars = jax.tree_util.tree_map(lambda x: x, train_state.mdl_vars)  # fresh dicts
      _set_leaf(mdl_vars, POSEMB, array)
      posemb.delete()
      train_state = train_state.replace(mdl_vars=mdl_vars)
    return train_state, provenance, update_opt
