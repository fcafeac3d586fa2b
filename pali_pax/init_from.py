"""`INIT_FROM` across resolutions: paxml's init-from-checkpoint rules + the posemb resample.

paxml's `CheckpointLoadingRules` restore the source checkpoint at the shapes of
the model being trained and assign variables by name; they never compare a
saved shape with the model's (a smaller saved array is read as a slice or
fails deep inside tensorstore). `PaliTask`, the SingleTask of every
`PaliExperiment`, first reads the shape of every model variable saved in the
checkpoint (the zarr metadata, no data) and compares it with the model's:

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

import json
import re
from typing import Any

import jax
import numpy as np
import tensorstore as ts
from etils import epath
from paxml import tasks_lib
from paxml.checkpoint_types import CheckpointType

from pali_pax.core.errors import CheckpointMismatchError, FileFormatError
from pali_pax.layers.vit import resample_posemb

POSEMB = 'params/vit/pos_embedding'
_STEP_DIR = re.compile(r'checkpoint_(\d+)')


def checkpoint_step_dir(ckpt_dir: str, step: int | None = None) -> epath.Path:
  """`ckpt_dir/checkpoint_<step>` (default: the newest complete one) of a paxml checkpoint dir."""
  root = epath.Path(ckpt_dir)
  if _STEP_DIR.fullmatch(root.name) and step is None:
    return root
  if not root.is_dir():
    raise FileNotFoundError(f'INIT_FROM checkpoint dir {ckpt_dir} does not exist')
  steps = {int(m.group(1)): p for p in root.iterdir() if (m := _STEP_DIR.fullmatch(p.name))}
  if not steps:
    raise FileNotFoundError(f'INIT_FROM {ckpt_dir} holds no checkpoint_<step> directory')
  if step is not None and step not in steps:
    raise FileNotFoundError(f'INIT_FROM {ckpt_dir} has no step {step}; it has {sorted(steps)}')
  return steps[max(steps) if step is None else step]


def saved_var_shapes(step_dir: epath.Path) -> dict[str, tuple[int, ...]]:
  """{'params/vit/pos_embedding': shape, ...} of the model variables saved in one checkpoint."""
  out = {}
  for array_dir in (step_dir / 'state').iterdir():
    if not array_dir.name.startswith('mdl_vars.'):
      continue
    zarray = array_dir / '.zarray'
    try:
      shape = tuple(json.loads(zarray.read_text())['shape'])
    except (OSError, ValueError, KeyError) as e:
      raise FileFormatError(f'{zarray}: not a readable zarr array header ({e})') from e
    out[array_dir.name[len('mdl_vars.') :].replace('.', '/')] = shape
  if not out:
    raise FileFormatError(f'{step_dir}/state holds no model variables (mdl_vars.*)')
  return out


def posemb_needs_resample(
  saved: dict[str, tuple[int, ...]], model: dict[str, tuple[int, ...]], source: str
) -> bool:
  """Whether only the posemb grid differs; raises for every other mismatch.

  Args:
    saved: variable shapes in the checkpoint (`saved_var_shapes`).
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


def read_saved_array(step_dir: epath.Path, name: str) -> np.ndarray:
  """One saved model variable as numpy (e.g. `POSEMB`), read with tensorstore."""
  path = step_dir / 'state' / ('mdl_vars.' + name.replace('/', '.'))
  text = str(path)
  if text.startswith('gs://'):
    bucket, _, key = text[len('gs://') :].partition('/')
    kvstore = {'driver': 'gcs', 'bucket': bucket, 'path': key}
  else:
    kvstore = {'driver': 'file', 'path': text}
  return np.asarray(ts.open({'driver': 'zarr', 'kvstore': kvstore}).result().read().result())


def _flat_leaves(tree: Any) -> dict[str, Any]:
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): x for path, x in leaves}


def _set_leaf(tree: dict, name: str, value: Any) -> None:
  *parents, leaf = name.split('/')
  for key in parents:
    tree = tree[key]
  tree[leaf] = value


class PaliTask(tasks_lib.SingleTask):
  """paxml's SingleTask whose INIT_FROM rules check shapes and resample the ViT posemb."""

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
      step_dir = checkpoint_step_dir(ckpt_path, rules.step)
      saved = saved_var_shapes(step_dir)
      if posemb_needs_resample(saved, model_shapes, str(step_dir)):
        # paxml would read it at the model's shape: skip it there, resample it below.
        ignore = [*(rules.ignore_rules or []), re.escape(POSEMB)]
        all_rules[ckpt_path] = rules._replace(ignore_rules=ignore)
        resample_from = resample_from or step_dir
    # Kept before paxml frees the randomly initialised arrays it overwrites.
    posemb = targets.get(POSEMB)
    shape, sharding = (posemb.shape, posemb.sharding) if posemb is not None else (None, None)
    train_state, provenance, update_opt = super().apply_init_checkpoint_rules(
      train_state, train_state_provenance, train_state_partition_specs, global_mesh, checkpoint_type
    )
    if resample_from is not None:
      saved_posemb = read_saved_array(resample_from, POSEMB)
      side = round(np.sqrt(shape[1]))
      new = resample_posemb(saved_posemb, (side, side)).astype(posemb.dtype)
      array = jax.make_array_from_callback(shape, sharding, lambda index: new[index])
      mdl_vars = jax.tree_util.tree_map(lambda x: x, train_state.mdl_vars)  # fresh dicts
      _set_leaf(mdl_vars, POSEMB, array)
      posemb.delete()
      train_state = train_state.replace(mdl_vars=mdl_vars)
    return train_state, provenance, update_opt
