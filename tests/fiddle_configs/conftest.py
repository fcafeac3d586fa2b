"""Shared helper: run the tiny experiment through `pali-pax train` (= paxml.main)."""

import os
import re
import subprocess
import sys

import pytest

STEP_LOSS = re.compile(r'step = (\d+), loss= ([0-9.eE+-]+)')
TIMEOUT_S = 900  # paxml can hang instead of exiting when a thread dies


def tiny_command(job_dir, steps, *extra, devices=1, **overrides):
  """(argv, env) of `pali-pax train` on PaliTinySynthetic with `--fdl.K=V` overrides."""
  flags = [f'--fdl.{k}={v}' for k, v in {'NUM_TRAIN_STEPS': steps, **overrides}.items()]
  cmd = [
    sys.executable,
    '-m',
    'pali_pax.cli',
    'train',
    '--fdl_config=pali_pax.fiddle_configs.experiments.tiny_synthetic',
    *flags,
    f'--job_log_dir={job_dir}',
    '--mode=train',
    *extra,
  ]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  if devices > 1:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  return cmd, env


def _run_tiny(job_dir, steps, *extra, devices=1, **overrides):
  """Runs `pali-pax train` on PaliTinySynthetic; returns {step: train loss}."""
  cmd, env = tiny_command(job_dir, steps, *extra, devices=devices, **overrides)
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
  log = proc.stdout + proc.stderr
  with open(os.path.join(job_dir, f'run_{steps}.log'), 'w') as f:
    f.write(log)
  assert proc.returncode == 0, log[-4000:]
  losses = {}
  for m in STEP_LOSS.finditer(log):
    losses.setdefault(int(m.group(1)), float(m.group(2)))  # first = the train loss line
  return losses, log


@pytest.fixture(scope='session')
def run_tiny():
  """`run_tiny(job_dir, steps, *paxml_flags, devices=1, **overrides) -> ({step: loss}, log)`."""
  return _run_tiny


@pytest.fixture(scope='session')
def tiny_train_command():
  """`tiny_train_command(job_dir, steps, *paxml_flags, devices=1, **overrides) -> (argv, env)`."""
  return tiny_command
