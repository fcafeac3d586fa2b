"""`pali-pax` commands in a fresh interpreter, as a user runs them (train, eval, launch-local).

run_cli     any sub-command; asserts exit status 0 (failing with the log's tail), keeps the log
run_tiny    `pali-pax train` of PaliTinySynthetic with `--fdl.K=V` overrides -> ({step: loss}, log)
            (LR_SCHEDULE 'rsqrt' unless given: a run can be resumed into more steps)
"""

import os
import re
import subprocess
import sys
from typing import NamedTuple

STEP_LOSS = re.compile(r'step = (\d+), loss= ([0-9.eE+-]+)')
TIMEOUT_S = 1200  # paxml can hang instead of exiting when a thread dies
TINY_CONFIG = '--fdl_config=pali_pax.fiddle_configs.experiments.tiny_synthetic'


class Run(NamedTuple):
  stdout: str
  log: str  # stdout + stderr


def cli_env(devices: int | None = None, **extra: str) -> dict[str, str]:
  """The test process's environment, TF's logging quiet, `devices` emulated CPU devices."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', **extra)
  if devices is not None:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  return env


def cli_command(*args) -> list[str]:
  """argv of `pali-pax ARGS` run by this interpreter."""
  return [sys.executable, '-m', 'pali_pax.cli', *map(str, args)]


def run_cli(*args, env=None, timeout=TIMEOUT_S, log_path=None, append=False) -> Run:
  """Runs `pali-pax ARGS`; writes its log to `log_path` if given; asserts it succeeded."""
  proc = subprocess.run(
    cli_command(*args), capture_output=True, text=True, timeout=timeout, env=env or cli_env()
  )
  log = proc.stdout + proc.stderr
  if log_path is not None:
    with open(log_path, 'a' if append else 'w') as f:
      f.write(log)
  assert proc.returncode == 0, log[-4000:]
  return Run(proc.stdout, log)


def tiny_command(job_dir, steps, *extra, devices=1, **overrides) -> tuple[list[str], dict]:
  """(argv, env) of `pali-pax train` on PaliTinySynthetic with `--fdl.K=V` overrides."""
  # Resumed legs raise NUM_TRAIN_STEPS; the demo's cosine decay depends on it, rsqrt does not.
  overrides = {'NUM_TRAIN_STEPS': steps, 'LR_SCHEDULE': "'rsqrt'", **overrides}
  flags = [f'--fdl.{k}={v}' for k, v in overrides.items()]
  cmd = cli_command('train', TINY_CONFIG, *flags, f'--job_log_dir={job_dir}', '--mode=train')
  return [*cmd, *extra], cli_env(devices if devices > 1 else None)


def train_losses(log: str) -> dict[int, float]:
  """{step: train loss} from paxml's log lines (the first line of a step is the train loss)."""
  losses = {}
  for m in STEP_LOSS.finditer(log):
    losses.setdefault(int(m.group(1)), float(m.group(2)))
  return losses


def run_tiny(job_dir, steps, *extra, devices=1, **overrides) -> tuple[dict[int, float], str]:
  """Runs `pali-pax train` on PaliTinySynthetic (log: JOB/run_STEPS.log) -> ({step: loss}, log)."""
  cmd, env = tiny_command(job_dir, steps, *extra, devices=devices, **overrides)
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
  log = proc.stdout + proc.stderr
  os.makedirs(job_dir, exist_ok=True)
  with open(os.path.join(job_dir, f'run_{steps}.log'), 'w') as f:
    f.write(log)
  assert proc.returncode == 0, log[-4000:]
  return train_losses(log), log
