"""What trains: trainable / total parameters and optimizer-state bytes of a task.

Counted from shapes only (`pali_pax.core.params.count`; leaves may be arrays,
tracers or `jax.ShapeDtypeStruct`s), so it works for pod-size configs on a CPU.
`PaliTask` logs it when paxml creates the optimizer state at start.
"""

import math
from typing import Any

import jax
from paxml import tasks_lib
from praxis import base_layer

from pali_pax.core import params as params_lib


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
