"""Runs a benchmark function in a fresh Python process and returns its JSON.

Peak memory (ru_maxrss) is per process, and XLA's device count is fixed at
start-up, so points that measure memory or emulate devices each get their own
process. The child prints one line `RESULT <json>`; its stderr (progress) is
passed through.
"""

import json
import os
import subprocess
import sys
from typing import Any

from benchmarks.timing import progress

RESULT = 'RESULT '


def run_child(
  module: str,
  args: list[str],
  env: dict[str, str] | None = None,
  timeout: float = 3600,
  devices: int | None = None,
) -> dict[str, Any] | None:
  """`python -m module args...`; returns the child's RESULT json or None on failure.

  devices: emulate this many CPU devices in the child (XLA_FLAGS, added to ours).
  """
  full_env = dict(os.environ)
  full_env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  full_env.update(env or {})
  if devices is not None:
    flag = f'--xla_force_host_platform_device_count={devices}'
    full_env['XLA_FLAGS'] = f'{full_env.get("XLA_FLAGS", "")} {flag}'.strip()
  cmd = [sys.executable, '-m', module, *args]
  try:
    proc = subprocess.run(
      cmd,
      env=full_env,
      stdout=subprocess.PIPE,
      stderr=None,
      text=True,
      timeout=timeout,
      check=False,
    )
  except subprocess.TimeoutExpired:
    progress(f'{module} {" ".join(args)}: timed out after {timeout:.0f} s')
    return None
  for line in proc.stdout.splitlines()[::-1]:
    if line.startswith(RESULT):
      return json.loads(line[len(RESULT) :])
  progress(f'{module} {" ".join(args)}: failed (exit {proc.returncode})')
  return None


def emit(result: dict[str, Any]) -> None:
  """Child side: prints the result line the parent looks for."""
  print(RESULT + json.dumps(result), flush=True)


def peak_rss_bytes() -> int:
  """Peak resident set size of this process so far, bytes.

  /proc/self/status VmHWM: the high-water mark of this process's own address
  space, reset by exec. (ru_maxrss is not: on Linux it survives fork + exec, so
  a child started from a large parent would report the parent's peak.)
  """
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  import resource

  return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
