"""What trains: trainable / total parameters and optimizer-state bytes of a task.

Counted from shapes only (`pali_pax.core.params.count`; leaves may be arrays,
tracers or `jax.ShapeDtypeStruct`s), so it works for pod-size configs on a CPU.
`PaliTask` logs it when paxml creates the optimizer state at start.

What a LoRA job's checkpoints leave out is decided here too (`base_record`): its
frozen params, read back from the INIT_FROM step recorded when the job starts
(`pali_pax.checkpoint.frozen`).
"""

import math
from typing import Any

import jax
from absl import logging
from etils import epath
from paxml import tasks_lib
from praxis import base_layer

from pali_pax.checkpoint import frozen, layout, reading
from pali_pax.core import errors
from pali_pax.core import params as params_lib
from pali_pax.fiddle_configs import learner


def _bytes(tree: Any) -> int:
  leaves = jax.tree_util.tree_leaves(tree)
  return int(sum(math.prod(x.shape) * jax.numpy.dtype(x.dtype).itemsize for x in leaves))


def summary(
  mdl_vars: Any, var_weight_hparams: Any, learner: Any, opt_states: Any = None
) -> dict[str, int]:
  """{'total', 'trainable', 'trainable_bytes', 'opt_state_bytes'} of one learner's view.

  Args:
    mdl_vars: the model variables (shapes suffice).
    var_weight_hparams: their WeightHParams (same structure).
    learner: the paxml Learner whose bprop inclusion / exclusion decides what trains.
    opt_states: the optimizer state paxml created (for its bytes), or None.
  """
  params = mdl_vars[base_layer.PARAMS]
  excluded = tasks_lib.get_excluded_var_mask_for_grad(var_weight_hparams, learner)
  trained = jax.tree_util.tree_map(
    lambda x, e: None if e else x, mdl_vars, excluded, is_leaf=lambda x: x is None
  )
  trained = trained[base_layer.PARAMS]
  return {
    'total': params_lib.count(params),
    'trainable': params_lib.count(trained),
    'trainable_bytes': _bytes(trained),
    'opt_state_bytes': _bytes(opt_states) if opt_states is not None else -1,
  }


def describe(s: dict[str, int]) -> str:
  """One log line of a `summary`."""
  frac = s['trainable'] / max(1, s['total'])
  return (
    f'trainable parameters {s["trainable"]:,} of {s["total"]:,} ({100 * frac:.3g}%); '
    f'optimizer state {s["opt_state_bytes"] / 2**20:,.2f} MiB'
  )


def saves_only_trainable(exp: Any) -> bool:
  """Whether a job of `exp` leaves its frozen params out of its checkpoints.

  A LoRA fine-tune of INIT_FROM: its frozen params stay INIT_FROM's bit for bit, so
  they are read from there. (Without INIT_FROM they are a random init: saved.)
  """
  uses_lora = getattr(exp, 'uses_lora', None)
  return bool(uses_lora and uses_lora() and exp.INIT_FROM)


def base_record(exp: Any, job_dir: str) -> dict[str, Any] | None:
  """The `base_checkpoint` entry of JOB/pali_pax.json for a job of `exp` (None: full steps).

  The first start pins INIT_FROM's newest intact step (the one paxml's init rule
  reads, `fiddle_configs.task`); a restart keeps the recorded one, which the job's
  steps rely on.

  Raises:
    ConfigError: the job already holds steps saved under other rules (the frozen
      set, or whether params are left out, would change under them).
  """
  recorded = frozen.of_job(job_dir)
  has_steps = bool(layout.all_steps(job_dir))
  if not saves_only_trainable(exp):
    if recorded is not None and has_steps:
      raise errors.ConfigError(
        f'{job_dir}: its checkpoints hold only the trainable params (frozen ones are in '
        f'{recorded.step_dir}); resume it as it started (TRAINABLE, INIT_FROM) or use a new job dir'
      )
    return None
  inclusion, exclusion = learner.trainable_rules(exp.trainable())
  if recorded is not None and has_steps:
    if (recorded.inclusion, recorded.exclusion) != (tuple(inclusion), tuple(exclusion)):
      raise errors.ConfigError(
        f'{job_dir}: its checkpoints were saved with trainable rules '
        f'{recorded.inclusion or recorded.exclusion}, now {inclusion or exclusion}; '
        'TRAINABLE must stay as the job started (or use a new job dir)'
      )
    now = layout.checkpoint_dir(exp.INIT_FROM)
    if epath.Path(recorded.step_dir).parent != (now if now.is_absolute() else now.resolve()):
      logging.warning(
        'pali_pax: %s reads its frozen params from %s (recorded at its start), not INIT_FROM=%s',
        job_dir,
        recorded.step_dir,
        exp.INIT_FROM,
      )
    return recorded.to_json()
  step, step_dir = reading.find_step(exp.INIT_FROM)
  return frozen.make(step_dir, step, inclusion, exclusion).to_json()
