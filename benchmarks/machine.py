"""What the numbers were measured on: CPU, cores, memory, library versions, load."""

import datetime
import importlib.metadata
import os
import platform
import subprocess
from typing import Any

PACKAGES = ('jax', 'jaxlib', 'praxis', 'paxml', 'flax', 'torch', 'transformers')


def _lscpu() -> dict[str, str]:
  try:
    text = subprocess.run(['lscpu'], capture_output=True, text=True, check=False).stdout
  except OSError:
    return {}
  out = {}
  for line in text.splitlines():
    key, _, value = line.partition(':')
    out[key.strip()] = value.strip()
  return out


def _version(name: str) -> str | None:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return None


def describe() -> dict[str, Any]:
  """Machine facts for the report (cheap; no benchmark runs)."""
  cpu = _lscpu()
  flags = cpu.get('Flags', '').split()
  mem = None
  try:
    with open('/proc/meminfo') as f:
      mem = int(f.readline().split()[1]) * 1024
  except OSError:
    pass
  return dict(
    date=datetime.datetime.now().isoformat(timespec='seconds'),
    cpu_model=cpu.get('Model name', platform.processor()),
    cpus=os.cpu_count(),
    cpus_usable=len(os.sched_getaffinity(0)),
    threads_per_core=cpu.get('Thread(s) per core'),
    hypervisor=cpu.get('Hypervisor vendor'),
    isa=[f for f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16') if f in flags],
    memory_bytes=mem,
    python=platform.python_version(),
    versions={p: _version(p) for p in PACKAGES},
    xla_flags=os.environ.get('XLA_FLAGS', ''),
    load_avg_start=os.getloadavg(),
  )
