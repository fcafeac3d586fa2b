"""Warm starts: what `pali-pax predict` reads of a checkpoint, and `pali-pax` as a process.

- `reading.restore_params` reads the step and the model variables, never the
  optimizer slots: a step whose slots are gone still restores, to the same params.
- `pali_pax.cli.process`: the collector held off during the imports (frozen after),
  and a printing command's fast exit that still delivers all its output; `cli.main`
  with an argv changes nothing in the calling process.
"""

import gc
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from pali_pax import cli, job_config
from pali_pax.checkpoint import layout, reading
from tests import runs


@pytest.fixture(scope='module')
def exp(tiny_pax_job):
  return job_config.experiment_of(tiny_pax_job)


def _flat(tree):
  return {
    '/'.join(str(k.key) for k in path): leaf
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


def test_params_state_shapes_are_the_train_states_model_variables_without_slots(exp):
  shapes = reading.params_state_shapes(exp)
  assert shapes.opt_states == [] and shapes.extra_state == ()
  meta = reading.train_state_metadata(reading.jax_task(exp), exp)
  assert meta.unpadded_global_shapes.opt_states  # the full state has slots to skip
  want = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), meta.unpadded_global_shapes.mdl_vars)
  assert jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), shapes.mdl_vars) == want


def test_restore_params_reads_no_optimizer_slot(exp, tiny_pax_job, tmp_path):
  copy = tmp_path / 'job'
  shutil.copytree(tiny_pax_job, copy)
  step, step_dir = reading.find_step(layout.checkpoint_dir(copy))
  slots = [p for p in (step_dir / 'state').iterdir() if p.name.startswith('opt_states')]
  assert slots
  for path in slots:
    shutil.rmtree(path)
  # An explicit step: the integrity check would (rightly) call the step incomplete now.
  params = _flat(reading.restore_params(exp, str(copy), step))
  assert params.keys() == _flat(reading.restore_params(exp, tiny_pax_job)).keys()
  for name, value in params.items():
    np.testing.assert_array_equal(value, layout.read_saved_array(step_dir, f'params/{name}'))


def test_main_with_argv_leaves_the_callers_process_alone(capsys):
  frozen = gc.get_freeze_count()
  assert cli.main(['experiments']) == 0  # returns: no exit
  assert gc.isenabled() and gc.get_freeze_count() == frozen
  assert 'PaliTinySynthetic' in capsys.readouterr().out


def test_managed_process_collects_after_the_imports_and_exits_with_its_output():
  code = (
    'import gc\n'
    'from pali_pax.cli import process\n'
    'process.manage()\n'
    'assert not gc.isenabled()\n'
    "process.imports_done('predict')\n"
    'assert gc.isenabled() and gc.get_freeze_count() > 0\n'
    "print('x' * 100000, end='')\n"  # more than a pipe holds: flushed before the exit
    'process.exit_now(3)\n'
    'raise SystemExit(0)\n'
  )
  proc = subprocess.run(
    [sys.executable, '-c', code], capture_output=True, text=True, timeout=120, env=runs.cli_env()
  )
  assert proc.returncode == 3, proc.stderr[-2000:]
  assert proc.stdout == 'x' * 100000


@pytest.mark.parametrize(
  'managed,command,off', [(True, 'train', True), (True, 'serve', False), (False, 'train', False)]
)
def test_grappler_is_off_only_in_a_managed_input_only_command(managed, command, off):
  code = (
    'import tensorflow as tf\n'
    'from pali_pax.cli import process\n'
    + ('process.manage()\n' if managed else '')
    + f'process.imports_done({command!r})\n'
    "print(tf.config.optimizer.get_experimental_options().get('disable_meta_optimizer', False))\n"
  )
  proc = subprocess.run(
    [sys.executable, '-c', code], capture_output=True, text=True, timeout=120, env=runs.cli_env()
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == str(off)
