"""Checkpoints that leave out the frozen params: they are read from the job's base checkpoint.

A LoRA job (TRAINABLE='lora' with INIT_FROM) trains only its adapters; the base
model's weights stay bit-identical to INIT_FROM's. So its steps hold only what
trains (the adapters, their optimizer state, the step), and the frozen params are
read from the base. JOB/pali_pax.json says so (written when the job starts,
`pali_pax.job_config.write`):

    "base_checkpoint": {"step_dir": "/abs/BASE/checkpoints/checkpoint_00000100",
                        "step": 100,
                        "bprop_variable_inclusion": [...], "bprop_variable_exclusion": [...]}

The frozen set is what the learner's rules exclude from the gradient
(`fiddle_configs.learner.trainable_rules`), matched by paxml's own matcher
(`py_utils.match_variable_names`, as `tasks_lib.get_excluded_var_mask_for_grad`),
restricted to the `params` collection. The base step is pinned when the job
starts, so a base job that goes on training changes nothing here.

In paxml's terms (`saving.ChecksummedPaxCheckpointHandler`): a frozen param is an
`optax.MaskedNode` to the state handler, as paxml already treats the optimizer
slots of frozen variables: neither written nor read. paxml's step metadata
(`metadata/metadata`) still describes the whole model. On restore the masked
params are read from the base step by the same handler, after the base step is
verified intact (`integrity.verify_here`), and put back into the train state. A
step's checksums cover exactly what it holds; the base's own checksums cover the
rest.
"""

import dataclasses
import json
from typing import Any

import jax
import optax
from etils import epath
from praxis import base_layer, py_utils

from pali_pax.checkpoint import integrity, job_meta, layout
from pali_pax.core.errors import CorruptCheckpointError, FileFormatError

KEY = 'base_checkpoint'


@dataclasses.dataclass(frozen=True)
class BaseCheckpoint:
  """Where a job's frozen params are, and which params are frozen."""

  step_dir: str
  step: int
  inclusion: tuple[str, ...]  # the learner's bprop_variable_inclusion
  exclusion: tuple[str, ...]  # the learner's bprop_variable_exclusion

  def to_json(self) -> dict[str, Any]:
    return {
      'step_dir': self.step_dir,
      'step': self.step,
      'bprop_variable_inclusion': list(self.inclusion),
      'bprop_variable_exclusion': list(self.exclusion),
    }

  @classmethod
  def from_json(cls, d: dict[str, Any], source: str) -> 'BaseCheckpoint':
    try:
      return cls(
        str(d['step_dir']),
        int(d['step']),
        tuple(d['bprop_variable_inclusion']),
        tuple(d['bprop_variable_exclusion']),
      )
    except (KeyError, TypeError, ValueError) as e:
      raise FileFormatError(f'{source}: unreadable {KEY!r} ({e})') from e


def make(
  step_dir: epath.PathLike, step: int, inclusion: Any = (), exclusion: Any = ()
) -> BaseCheckpoint:
  """The record of a base step (an absolute path) and the learner's rules."""
  path = epath.Path(step_dir)
  return BaseCheckpoint(
    str(path if path.is_absolute() else path.resolve()),
    int(step),
    tuple(inclusion),
    tuple(exclusion),
  )


def of_job(job_dir: epath.PathLike) -> BaseCheckpoint | None:
  """The base checkpoint recorded in JOB/pali_pax.json (JOB or JOB/checkpoints), or None."""
  path = layout.job_dir_of(job_dir) / job_meta.METADATA_FILE
  if not path.exists():
    return None
  try:
    meta = json.loads(path.read_text())
  except ValueError as e:
    raise FileFormatError(f'{path} is not valid JSON: {e}') from e
  record = meta.get(KEY)
  return BaseCheckpoint.from_json(record, str(path)) if record else None


def of_item_dir(item_dir: epath.PathLike) -> BaseCheckpoint | None:
  """The record of the job whose step (or unfinished save) holds `item_dir` (…/state)."""
  return of_job(epath.Path(item_dir).parent.parent)


def frozen_mask(mdl_vars: Any, base: BaseCheckpoint) -> Any:
  """A bool tree over `mdl_vars` ({'params': ...}): True for a param the job leaves out."""
  if base.inclusion:
    mask = jax.tree_util.tree_map(
      lambda m: not m, py_utils.match_variable_names(mdl_vars, base.inclusion)
    )
  else:
    mask = py_utils.match_variable_names(mdl_vars, base.exclusion)
  # Only model weights: another collection (e.g. running statistics) may change while frozen.
  for key in list(mask):  # a fresh tree of mdl_vars' own node types (dict / NestedMap)
    if key != base_layer.PARAMS:
      mask[key] = jax.tree_util.tree_map(lambda _: False, mask[key])
  return mask


def _select(mask: Any, tree: Any, frozen: bool) -> Any:
  """`tree` with a MaskedNode where `mask` is `frozen` (not frozen: keeps what is frozen)."""
  return jax.tree_util.tree_map(lambda m, x: optax.MaskedNode() if m == frozen else x, mask, tree)


def without_frozen(state: Any, mask: Any) -> Any:
  """A TrainState (of arrays, shapes or specs) whose frozen params are MaskedNodes."""
  return state.replace(mdl_vars=_select(mask, state.mdl_vars, True))


def only_frozen(state: Any, mask: Any) -> Any:
  """A TrainState of the frozen params alone (plus the step), to read from the base."""
  return state.replace(mdl_vars=_select(mask, state.mdl_vars, False), opt_states=[], extra_state=())


def merged(own: Any, from_base: Any, mask: Any) -> Any:
  """`own` (a restored TrainState) with its frozen params taken from `from_base`."""
  mdl_vars = jax.tree_util.tree_map(
    lambda m, x, b: b if m else x, mask, own.mdl_vars, from_base.mdl_vars
  )
  return own.replace(mdl_vars=mdl_vars)


def check_base(base: BaseCheckpoint, job: str) -> epath.Path:
  """The base step dir, verified intact (split across the job's processes; all must call it).

  Raises:
    CorruptCheckpointError: the base step is gone, corrupt or incomplete (names it).
  """
  step_dir = epath.Path(base.step_dir)
  if layout.step_of(step_dir) != base.step:
    raise FileFormatError(f'{job}: {KEY} {step_dir} is not the step dir of step {base.step}')
  problems, corrupt = integrity.verify_here(step_dir)
  if corrupt:
    report = '\n  '.join(problems or ['(found by another process)'])
    raise CorruptCheckpointError(
      f'{job} keeps only its trainable params; its frozen params are in the base checkpoint '
      f'{step_dir} (step {base.step}), which is missing or corrupt:\n  {report}'
    )
  return step_dir
