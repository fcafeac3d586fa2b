"""A pod in miniature (issue 9): `paxml.main` as 2 JAX processes x 4 CPU devices.

The same few training steps of the tiny experiment run as 1 device, 1 process x
8 devices, and 2 processes x 4 devices (`pali-pax launch-local`, gloo
collectives) with an ICI-only mesh [1,2,4] and with a DCN mesh ICI [1,1,4] x
DCN [1,2,1]; the train losses paxml writes to TensorBoard must agree (rtol
2e-3: float32 reductions in a different order, ~1e-6 relative per op, stay
far below it, while a global batch that changes with the host count moves the
loss by ~1%). Then a 2-process run is killed in one process after a checkpoint
and rerun: it resumes from the last complete step and ends where an
uninterrupted run ends.

Each run compiles for ~1-2 min on a 2-core machine: `make test-slow` target,
about 15 min in all.
"""

import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.runs import cli_command, cli_env, run_cli

pytestmark = pytest.mark.slow

STEPS = 20
SUMMARY_EVERY = 5  # EVAL_EVERY sets paxml's summary interval (experiment_base)
TIMEOUT_S = 1200
FLAGS = [
  "--fdl_config=pali_pax.fiddle_configs.experiments.experiment_config('PaliTinySynthetic')",
  f'--fdl.NUM_TRAIN_STEPS={STEPS}',
  f'--fdl.EVAL_EVERY={SUMMARY_EVERY}',
  '--fdl.CHECKPOINT_EVERY=5',
  '--mode=train',
]


def train_losses(job_dir) -> dict[int, float]:
  """{step: train loss} from the job dir's TensorBoard summaries (the last value per step)."""
  import tensorflow as tf
  from tensorboard.backend.event_processing import event_accumulator

  acc = event_accumulator.EventAccumulator(
    os.path.join(job_dir, 'summaries', 'train'), size_guidance={'tensors': 0}
  )
  acc.Reload()
  return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors('loss')}


def _mesh_flags(ici, dcn=None) -> list[str]:
  flags = [f'--fdl.ICI_MESH_SHAPE={list(ici)}']
  if dcn is not None:
    flags.append(f'--fdl.DCN_MESH_SHAPE={list(dcn)}')
  return flags


def _env(devices: int) -> dict[str, str]:
  return cli_env(devices, JAX_PLATFORMS='cpu')


def _command(job_dir, processes, devices, mesh_flags, steps=STEPS):
  flags = [*FLAGS, *mesh_flags, f'--job_log_dir={job_dir}', f'--fdl.NUM_TRAIN_STEPS={steps}']
  if processes == 1:
    return ['train', *flags]
  launch = ['launch-local', f'--processes={processes}', f'--devices_per_process={devices}']
  return [*launch, f'--timeout={TIMEOUT_S}', '--', *flags]


def _run(job_dir, processes, devices, mesh_flags, steps=STEPS):
  """Trains to the end; returns (losses, log)."""
  os.makedirs(job_dir, exist_ok=True)
  args = _command(job_dir, processes, devices, mesh_flags, steps)
  log_path = os.path.join(job_dir, 'run.log')
  run = run_cli(*args, env=_env(devices), timeout=TIMEOUT_S + 60, log_path=log_path, append=True)
  return train_losses(job_dir), run.log


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """One process, one device: the losses every other layout must reproduce."""
  losses, _ = _run(tmp_path_factory.mktemp('one_device'), 1, 1, _mesh_flags((1, 1, 1)))
  assert sorted(losses)[-1] == STEPS, losses
  return losses


def _assert_same_losses(losses, reference):
  steps = sorted(reference)
  assert sorted(losses) == steps, (sorted(losses), steps)
  np.testing.assert_allclose([losses[s] for s in steps], [reference[s] for s in steps], rtol=2e-3)


def test_one_process_8_devices_matches_one_device(tmp_path, reference):
  losses, _ = _run(tmp_path, 1, 8, _mesh_flags((1, 2, 4)))
  _assert_same_losses(losses, reference)


def test_two_processes_ici_mesh_trains_checkpoints_and_matches(tmp_path, reference):
  losses, log = _run(tmp_path, 2, 4, _mesh_flags((1, 2, 4)))
  # launch-local's prefixes, both hosts ran, and the checkpoints are complete.
  assert re.search(r'^\[0\] ', log, re.M) and re.search(r'^\[1\] ', log, re.M)
  assert f'checkpoint_{STEPS:08d}' in os.listdir(tmp_path / 'checkpoints')
  assert all(np.isfinite(v) for v in losses.values())
  _assert_same_losses(losses, reference)


def test_two_processes_dcn_mesh_matches(tmp_path, reference):
  _, log = _run(tmp_path, 2, 4, _mesh_flags((1, 1, 4), (1, 2, 1)))
  _assert_same_losses(train_losses(tmp_path), reference)


def _host_pid(job_dir, host_idx: int) -> int | None:
  """Pid of the `pali-pax train` process of one host of the job in `job_dir`."""
  for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
      with open(f'/proc/{pid}/cmdline', 'rb') as f:
        args = f.read().decode(errors='replace').split('\0')
    except OSError:
      continue
    if 'train' in args and f'--job_log_dir={job_dir}' in args and f'--host_idx={host_idx}' in args:
      return int(pid)
  return None


def test_rerun_after_one_process_is_killed_resumes_from_last_complete_step(tmp_path, reference):
  ckpt_dir = tmp_path / 'checkpoints'
  cmd = _command(tmp_path, 2, 4, _mesh_flags((1, 2, 4)))
  log_path = tmp_path / 'killed.log'
  with open(log_path, 'w') as log:
    launcher = subprocess.Popen(
      cli_command(*cmd), stdout=log, stderr=subprocess.STDOUT, env=_env(4)
    )
    deadline = time.monotonic() + TIMEOUT_S
    killed_after = None  # the step of the checkpoint that existed when host 1 was killed
    while launcher.poll() is None and time.monotonic() < deadline:
      if (ckpt_dir / 'checkpoint_00000010').exists():
        pid = _host_pid(tmp_path, 1)
        if pid is not None:
          os.kill(pid, signal.SIGKILL)
          killed_after = 10
          break
      time.sleep(0.2)
    status = launcher.wait(timeout=120)  # the supervisor stops host 0 promptly
  assert killed_after == 10, log_path.read_text()[-3000:]
  assert status != 0
  names = os.listdir(ckpt_dir)
  last = max(int(d.split('_')[-1]) for d in names if re.fullmatch(r'checkpoint_\d+', d))
  assert 10 <= last < STEPS

  losses, log = _run(tmp_path, 2, 4, _mesh_flags((1, 2, 4)))
  # paxml's executor logs the step it starts from: the restored checkpoint's.
  assert re.search(rf'Model initial global_step={last}\b', log), log[-3000:]
  assert f'checkpoint_{STEPS:08d}' in os.listdir(ckpt_dir)
  # Train steps after the restored one: the same losses as the uninterrupted run.
  after = {s: v for s, v in losses.items() if s > last}
  assert after
  np.testing.assert_allclose(
    [after[s] for s in sorted(after)], [reference[s] for s in sorted(after)], rtol=2e-3
  )
