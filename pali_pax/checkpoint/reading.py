"""Reading a Pax checkpoint: which step (the newest intact one), and its model params.

Every reader picks the step here: `Predictor.from_checkpoint`, `pali-pax eval`
and `export`, and INIT_FROM (`fiddle_configs.task.PaliTask`). Without an explicit
step that is `intact_latest_step`: corrupt newer steps are logged with their path
and problems and skipped (left in place: only training moves them aside). A job whose steps
leave out its frozen params (a LoRA job, `frozen`) gets them from its base step.
The experiment is a parameter (an instance): which one a job dir was trained with
is `pali_pax.job_config`'s business.
"""

from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from paxml import checkpoint_managers, tasks_lib, trainer_lib
from paxml.checkpoint_types import CheckpointType
from praxis import base_layer

from pali_pax.checkpoint import frozen, integrity, layout, saving
from pali_pax.core import batch as batch_lib
from pali_pax.core import params as params_lib
from pali_pax.core.errors import CheckpointMismatchError, MissingFileError


def intact_latest_step(job_dir: epath.PathLike) -> int | None:
  """Newest step of JOB (or JOB/checkpoints) whose checkpoint verifies, or None.

  The check is split across the processes of a multi-process job (all must call it).
  """
  return _intact_step(layout.checkpoint_dir(job_dir))


def _intact_step(ckpt_dir: epath.Path) -> int | None:
  for step, path in reversed(layout.step_dirs(ckpt_dir)):
    problems, corrupt = integrity.verify_here(path)
    if not corrupt:
      return step
    report = '\n  '.join(problems or ['(found by another process)'])
    logging.error('skipping corrupt checkpoint %s:\n  %s', path, report)
  return None


def find_step(path: epath.PathLike, step: int | None = None) -> tuple[int, epath.Path]:
  """(step, step dir) to read from JOB, JOB/checkpoints or a step dir.

  Args:
    path: a job dir, its checkpoints dir, or one `checkpoint_<8 digits>` dir.
    step: the step to read; None: the one `path` names, else the newest intact one.

  Raises:
    MissingFileError: `path` does not exist, holds no step, or lacks `step`; or
      every step is corrupt.
  """
  path = epath.Path(path)
  if not path.exists():
    raise MissingFileError(f'checkpoint dir {path} does not exist')
  named = layout.step_of(path)
  if named is not None and step is None:
    return named, path
  # A folder of steps (whatever its name), else JOB/checkpoints.
  ckpt_dir = path.parent if named is not None else path
  if not layout.step_dirs(ckpt_dir):
    ckpt_dir = layout.checkpoint_dir(ckpt_dir)
  steps = [s for s, _ in layout.step_dirs(ckpt_dir)]
  if not steps:
    raise MissingFileError(f'{path} holds no checkpoint_<step> directory')
  if step is None:
    step = _intact_step(ckpt_dir)
    if step is None:
      raise MissingFileError(f'{path} has no intact checkpoint (steps: {steps}; all corrupt)')
  elif step not in steps:
    raise MissingFileError(f'{path} has no step {step}; it has {steps}')
  return step, layout.step_path(ckpt_dir, step)


def jax_task(exp: Any) -> Any:
  """The experiment's SingleTask on one device (saved arrays are global anyway), no INIT_FROM."""
  task_p = exp.task()
  task_p.model = params_lib.unsharded(task_p.model)
  task_p.train.init_from_checkpoint_rules = {}
  return base_layer.instantiate(task_p)


def train_state_metadata(task: Any, exp: Any) -> Any:
  """paxml's TrainStateMetadata of `jax_task(exp)` (abstract shapes; nothing is allocated)."""
  return trainer_lib.create_train_state_metadata(task, batch_lib.batch_specs(exp.IMAGE_SIZE))


def fresh_train_state(exp: Any) -> tuple[Any, Any, Any]:
  """(jax_task, TrainStateMetadata, a freshly initialised TrainState) of `exp` on one device.

  The state's optimizer slots are those a new run of `exp` starts with; callers put
  weights into it and save it as a step (merging adapters, writing test jobs).
  """
  task = jax_task(exp)
  meta = train_state_metadata(task, exp)
  state, _ = trainer_lib.initialize_model_state(
    task,
    jax.random.PRNGKey(0),
    meta.input_shape_dtype,
    do_init_checkpoint_rules=False,
    var_weight_hparams=meta.var_weight_hparams,
  )
  return task, meta, state


def _dotted(path: Any) -> str:
  return '.'.join(str(getattr(k, 'key', k)) for k in path)


def _saved_params(step_dir: epath.PathLike) -> dict[str, tuple[int, ...]]:
  """{'a.b.w': shape} of the `params` variables saved in a step."""
  return {
    name[len('params/') :].replace('/', '.'): shape
    for name, shape in layout.saved_shapes(step_dir).items()
    if name.startswith('params/')
  }


def check_params_fit(
  step_dir: epath.PathLike, expected: Any, base: frozen.BaseCheckpoint | None = None
) -> None:
  """CheckpointMismatchError naming the first missing / unexpected / mis-shaped variable.

  Args:
    step_dir: the step to read.
    expected: the model's `params` tree (shapes).
    base: for a job whose steps leave out its frozen params (`frozen.of_job`): those
      are looked for in the base step, and the step must not hold them.
  """
  leaves = jax.tree_util.tree_flatten_with_path(expected)[0]
  want = {_dotted(path): tuple(leaf.shape) for path, leaf in leaves}
  have = _saved_params(step_dir)
  frozen_names, in_base = set(), {}
  if base is not None:
    mask = frozen.frozen_mask({base_layer.PARAMS: expected}, base)[base_layer.PARAMS]
    masked = jax.tree_util.tree_flatten_with_path(mask)[0]
    frozen_names = {_dotted(path) for path, is_frozen in masked if is_frozen}
    in_base = _saved_params(base.step_dir)
  holder = {
    name: (in_base, base.step_dir) if name in frozen_names else (have, step_dir) for name in want
  }
  for name in sorted(want):
    saved, where = holder[name]
    if name not in saved:
      raise CheckpointMismatchError(f'{where}: the model variable {name} is not in the checkpoint')
  for name in sorted(have.keys() - (want.keys() - frozen_names)):
    why = (
      'frozen here (it belongs in the base step)' if name in frozen_names else 'not in the model'
    )
    raise CheckpointMismatchError(f'{step_dir}: checkpoint variable {name} is {why}')
  for name in sorted(want):
    saved, where = holder[name]
    if want[name] != saved[name]:
      raise CheckpointMismatchError(
        f'{where}: variable {name} has shape {saved[name]} in the checkpoint but '
        f'{want[name]} in the model'
      )


def params_state_shapes(exp: Any) -> Any:
  """A TrainState of shapes: the step and `exp`'s model variables, no optimizer slots.

  The model's init is traced abstractly (nothing is allocated). Readers of the
  weights alone need no optimizer: the learner's slot shapes, which
  `train_state_metadata` also traces, cost a predictor's start about as much as
  the model itself.
  """
  model = base_layer.instantiate(params_lib.unsharded(exp.model_config()))
  # do_eval=False: the variables paxml's train-state metadata has (the checkpoint's).
  var_hparams = model.abstract_init_with_metadata(batch_lib.batch_specs(exp.IMAGE_SIZE))
  return tasks_lib.create_state_unpadded_shapes(var_hparams, discard_opt_states=True, learners=None)


def restore_params(exp: Any, job_dir: epath.PathLike, step: int | None = None) -> dict:
  """The `params` (numpy) of checkpoint `step` (None: newest intact) of a job, as `exp` has them.

  Only the step and the model variables are read: the optimizer slots (twice the
  params for Adam) stay on disk.

  Raises:
    CheckpointMismatchError: the checkpoint does not fit `exp`'s model (names the variable).
    MissingFileError: no such (intact) step.
  """
  step, step_dir = find_step(layout.checkpoint_dir(job_dir), step)
  # One device, no mesh: padded and unpadded global shapes are the same.
  shapes = params_state_shapes(exp)
  check_params_fit(step_dir, shapes.mdl_vars['params'], frozen.of_job(job_dir))
  # Our handler (whether or not `saving.install` ran): it reads a job's frozen params
  # from its base step.
  manager = checkpoint_managers.OrbaxCheckpointManager(
    step_dir.parent,
    ocp.Checkpointer(saving.ChecksummedPaxCheckpointHandler()),
    checkpoint_type=CheckpointType.GDA,
    tensorstore_use_ocdbt=False,  # paxml's restore_checkpoint default
  )
  restored = manager.restore(
    step, shapes, shapes, restore_kwargs={'specs': None, 'mesh': None, 'transforms': None}
  )
  return jax.tree_util.tree_map(np.asarray, restored.mdl_vars['params'])
