"""Runs a test script on N emulated CPU devices in a fresh Python process.

XLA reads --xla_force_host_platform_device_count once, when jax starts, so a
test that needs several devices runs its body as a script in a subprocess.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_on_devices(script: str, devices: int = 8, timeout: int = 300) -> str:
  """Runs `script` from the repository root with `devices` CPU devices; returns its stdout.

  Fails the test (with the script's output) when it exits non-zero.
  """
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  proc = subprocess.run(
    [sys.executable, '-c', script],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc.stdout
