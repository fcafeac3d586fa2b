"""docs/pods.md: what its mesh table and commands claim, checked without a TPU.

Slice facts used as the independent reference (Cloud TPU v4 documentation):
`v4-N` has N/2 chips (N counts TensorCores, 2 per chip; JAX sees one device
per chip) and 4 chips per host.
"""

import ast
import json
import math
import os
import re
import shlex

import pytest

from benchmarks import finetune_plan, memory_plan
from pali_pax.core import batch as batch_lib
from pali_pax.fiddle_configs import experiments, registry
from pali_pax.fiddle_configs.experiment_base import SIZE_PRESETS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, 'docs', 'pods.md')
PLAN = os.path.join(ROOT, 'docs', 'benchmarks.json')
CHIPS_PER_HOST = 4
TPU_V4_HBM_GIB = 32.0
MODEL_OF = {'Pali3BPretrain': '3b', 'Pali15BPretrain': '15b', 'Pali17BPretrain': '17b'}


def _doc() -> str:
  with open(DOC) as f:
    return f.read()


def _table(first_column: str) -> list[str]:
  """The lines of the doc's markdown table whose header starts with `first_column`."""
  tables, cur = [], []
  for ln in [*_doc().splitlines(), '']:
    if ln.startswith('|'):
      cur.append(ln)
    elif cur:
      tables.append(cur)
      cur = []
  (table,) = [t for t in tables if t[0].split('|')[1].strip() == first_column]
  return table


def _mesh_rows() -> list[dict[str, str]]:
  lines = [ln for ln in _table('experiment') if ln.startswith('| ')]
  header = [c.strip() for c in lines[0].strip('|').split('|')]
  assert header[:3] == ['experiment', 'slice', 'chips'], header
  cells = [[c.strip() for c in ln.strip('|').split('|')] for ln in lines[1:]]
  rows = [dict(zip(header, row, strict=True)) for row in cells]
  assert len(rows) >= 5
  return rows


def _mesh(text: str) -> tuple[int, ...] | None:
  return None if text == 'None' else tuple(json.loads(text))


def _slice_chips(name: str) -> tuple[int, int]:
  """('2 x v4-1024') -> (chips, slices)."""
  m = re.fullmatch(r'(?:(\d+) x )?v4-(\d+)', name)
  assert m, name
  slices = int(m.group(1) or 1)
  return slices * int(m.group(2)) // 2, slices


ROWS = _mesh_rows()


@pytest.mark.parametrize('row', ROWS, ids=[f'{r["experiment"]}@{r["slice"]}' for r in ROWS])
def test_slice_arithmetic(row):
  chips, slices = _slice_chips(row['slice'])
  ici, dcn = _mesh(row['ICI_MESH_SHAPE']), _mesh(row['DCN_MESH_SHAPE'])
  assert int(row['chips']) == chips
  assert int(row['hosts']) == chips // CHIPS_PER_HOST
  assert math.prod(ici) * math.prod(dcn or (1, 1, 1)) == chips
  assert math.prod(dcn or (1,)) == slices  # DCN only between slices
  batch, hosts = int(row['BATCH_SIZE']), int(row['hosts'])
  data = ici[0] * ici[1] * (dcn[0] * dcn[1] if dcn else 1)
  assert batch % hosts == 0 and batch % data == 0
  assert int(row['per host']) == batch // hosts
  assert batch // chips == 4  # the paper's (and the memory plan's) examples per chip


@pytest.mark.parametrize('row', ROWS, ids=[f'{r["experiment"]}@{r["slice"]}' for r in ROWS])
def test_row_flags_build_the_experiment_with_that_mesh(row):
  ici, dcn = _mesh(row['ICI_MESH_SHAPE']), _mesh(row['DCN_MESH_SHAPE'])
  exp = registry.get_experiment(row['experiment'])(
    ICI_MESH_SHAPE=ici,
    DCN_MESH_SHAPE=dcn,
    FSDP=row['FSDP'] == 'True',
    BATCH_SIZE=int(row['BATCH_SIZE']),
  )
  model = exp.model_config()
  assert tuple(model.ici_mesh_shape) == ici
  assert (tuple(model.dcn_mesh_shape) if model.dcn_mesh_shape else None) == dcn
  assert model.mesh_axis_names == ['replica', 'data', 'mdl']


def _plan_live_gib(size: str, image: int, fsdp: bool, d: int) -> tuple[float, str]:
  """Per-device live GiB of the compiled plan at data-axis size d (or its A + W/d fit)."""
  with open(PLAN) as f:
    points = [
      p
      for p in json.load(f)['memory_plan']
      if (p['size'], p['image_size'], p['fsdp'], p['shard_residual']) == (size, image, fsdp, False)
      and p['mesh'][2] == 4
    ]
  by_d = {p['mesh'][1]: p['peak'] / 2**30 for p in points}
  assert by_d, (size, image, fsdp)
  if not fsdp:  # every per-device buffer is independent of d (docs/benchmarks.md)
    return next(iter(by_d.values())), 'compiled'
  if d in by_d:
    return by_d[d], 'compiled'
  (d1, l1), (d2, l2) = sorted(by_d.items())[:2]
  w = (l1 - l2) / (1 / d1 - 1 / d2)
  return l1 - w / d1 + w / d, 'fit'


@pytest.mark.parametrize('row', ROWS, ids=[f'{r["experiment"]}@{r["slice"]}' for r in ROWS])
def test_memory_column_is_the_compiled_plan(row):
  ici, dcn = _mesh(row['ICI_MESH_SHAPE']), _mesh(row['DCN_MESH_SHAPE'])
  d = ici[1] * (dcn[1] if dcn else 1)
  image = registry.get_experiment(row['experiment']).IMAGE_SIZE
  live, how = _plan_live_gib(MODEL_OF[row['experiment']], image, row['FSDP'] == 'True', d)
  assert float(row['live GiB']) == pytest.approx(live, abs=0.006)
  assert row['plan'] == how
  assert live < TPU_V4_HBM_GIB  # the guide only recommends meshes that fit a v4 chip


def _plan_point(size: str, image: int, fsdp: bool) -> dict:
  with open(PLAN) as f:
    (point,) = [
      p
      for p in json.load(f)['memory_plan']
      if (p['size'], p['image_size'], p['fsdp'], p['shard_residual']) == (size, image, fsdp, False)
    ]
  return point


def test_committed_plan_is_what_the_code_plans_now():
  """The 3B rows' plan point: the code's train state (model, sharding, learner) has its sizes.

  `memory_plan.train_state` is the plan's own first half (shapes only, no compile): a
  change to the PaliModel config, its sharding or the learner's optimizer state changes
  these numbers, and the committed plan (and so the doc's column) would be stale.
  """
  point = _plan_point('3b', 224, False)
  mesh = tuple(point['mesh'])
  task_p = memory_plan.plan_task(
    '3b', 224, mesh, point['freeze_vit'], point['param_dtype'], point['fprop_dtype']
  )
  batch = batch_lib.batch_specs(
    224, point['per_device_batch'] * point['devices'], point['input_len'], point['target_len']
  )
  _, _, sizes = memory_plan.train_state(task_p, batch, mesh)
  for key in ('n_params', 'params_per_device', 'opt_state_per_device'):
    assert sizes[key] == point[key], key
  # The doc's live memory holds at least the weights and the optimizer state.
  state_gib = (sizes['params_per_device'] + sizes['opt_state_per_device']) / 2**30
  for row in ROWS:
    if row['experiment'] == 'Pali3BPretrain':
      assert state_gib < float(row['live GiB'])


def test_registered_pod_mesh_is_the_one_the_doc_states():
  m = re.search(r'`ICI_MESH_SHAPE=(\[[\d,]+\])`, `DCN_MESH_SHAPE=(\[[\d,]+\])`', _doc())
  assert m, 'docs/pods.md no longer states the registered mesh'
  ici, dcn = _mesh(m.group(1)), _mesh(m.group(2))
  for size in MODEL_OF.values():
    assert (SIZE_PRESETS[size]['ICI_MESH_SHAPE'], SIZE_PRESETS[size]['DCN_MESH_SHAPE']) == (
      ici,
      dcn,
    )
  for name in MODEL_OF:
    cls = registry.get_experiment(name)
    assert (cls.ICI_MESH_SHAPE, cls.DCN_MESH_SHAPE) == (ici, dcn), name
  # ... and it is one of the table's rows, at the registered batch.
  assert any(
    (r['experiment'], _mesh(r['ICI_MESH_SHAPE']), _mesh(r['DCN_MESH_SHAPE']), int(r['BATCH_SIZE']))
    == ('Pali3BPretrain', ici, dcn, experiments.Pali3BPretrain.BATCH_SIZE)
    for r in ROWS
  )


def test_17b_without_fsdp_does_not_fit_a_v4_chip():
  """The guide's reason for --fdl.FSDP=True."""
  live, _ = _plan_live_gib('17b', 224, False, 1)
  assert live > TPU_V4_HBM_GIB


def _train_commands() -> list[list[str]]:
  text = _doc().replace('\\\n', ' ')
  cmds = []
  for line in text.splitlines():
    if 'pali-pax train ' in line:
      # The end of a gcloud --command='...' is not part of the train command.
      cmds.append(shlex.split(line.split('pali-pax train ', 1)[1].rstrip().removesuffix("'")))
  assert len(cmds) >= 2
  return cmds


def test_command_flags_are_paxml_flags_or_experiment_attributes():
  import paxml.main  # noqa: F401  (defines paxml.main's absl flags)
  from absl import flags

  for args in _train_commands():
    exp_name = next(a.split('=', 1)[1] for a in args if a.startswith('--exp='))
    cls = registry.get_experiment(exp_name)
    overrides = {}
    for arg in args:
      name, _, value = arg[2:].partition('=')
      if name.startswith('fdl.'):
        attr = name[len('fdl.') :]
        assert attr.isupper() and hasattr(cls, attr), arg
        overrides[attr] = ast.literal_eval(value)  # what Fiddle's flags parse
      else:
        assert name in flags.FLAGS, arg
    for flag in ('multiprocess_gpu', 'server_addr', 'num_hosts', 'host_idx'):
      assert f'--{flag}' not in args  # TPU VMs discover their hosts themselves
    assert issubclass(cls, experiments.PaliExperiment)
    cls(**overrides).model_config()  # the overrides build (unknown attributes would raise)
    assert overrides.get('INIT_FROM', 'gs://').startswith('gs://')


# ---------------------------------------------------------------- fine-tuning fit table


def _finetune_plan() -> list[dict]:
  with open(PLAN) as f:
    return json.load(f)['finetune_plan']['records']


def test_fit_table_is_the_compiled_finetune_plan():
  """Every cell of the fit table is what docs/benchmarks.json's compiled records say."""
  assert _table('size') == finetune_plan.table_md(_finetune_plan()).splitlines()


def test_fit_table_covers_the_issue_grid():
  recs = _finetune_plan()
  rows = set(finetune_plan.rows(recs))
  for size in ('3b', '15b', '17b'):
    for px in (224, 448):
      for tr in ('all', 'no_vit', 'lora'):
        key = (size, px, tr, 'float32')
        assert key in rows, key
        for t in finetune_plan.TARGETS:
          assert finetune_plan.cell(recs, key, t)['status'] != 'missing', (key, t.key)


def test_lora_rows_are_the_lora_program():
  """'lora' records come from the LoRA model itself, not from the full program scaled:
  the adapters add parameters, and only they have optimizer state."""
  recs = [r for r in _finetune_plan() if 'peak' in r and r['family'] == 'single']
  for size in ('3b', '15b', '17b'):
    by_tr = {r['trainable']: r for r in recs if (r['size'], r['image_size']) == (size, 224)}
    lora, base = by_tr['lora'], by_tr['no_vit']  # no_vit: every base variable, ViT frozen
    assert base['n_params'] < lora['n_params'] < 1.05 * base['n_params']
    assert lora['opt_state_per_device'] < 0.2 * base['opt_state_per_device']


FINETUNE = [
  n
  for n in registry.names()
  if n.startswith('PaliFinetune') and registry.get_experiment(n).MODEL not in ('tiny', 'mini')
]


@pytest.mark.parametrize('name', FINETUNE)
def test_finetune_experiment_fits_its_slice(name):
  """The default PaliFinetune* step, compiled at its own mesh / TRAINABLE / batch, fits a v4 chip."""
  exp = registry.get_experiment(name)()
  recs = [r for r in _finetune_plan() if r['family'].startswith('experiment:')]
  (rec,) = [
    r
    for r in recs
    if (r['size'], r['image_size'], tuple(r['mesh']), r['fsdp'], r['batch'], r['trainable'])
    == (
      exp.MODEL,
      exp.IMAGE_SIZE,
      tuple(exp.ICI_MESH_SHAPE),
      exp.FSDP,
      exp.BATCH_SIZE,
      exp.trainable(),
    )
    and (r['input_len'], r['target_len']) == (exp.INPUT_LEN, exp.TARGET_LEN)
  ]
  assert exp.DCN_MESH_SHAPE is None and rec['devices'] == math.prod(exp.ICI_MESH_SHAPE)
  assert rec['peak'] < TPU_V4_HBM_GIB * 2**30
  # The class docstring states the plan's figure.
  assert f'{rec["peak"] / 2**30:.1f} GiB' in experiments._PaliFinetune.__doc__
