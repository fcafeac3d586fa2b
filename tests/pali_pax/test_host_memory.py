"""pali_pax.core.host_memory: freed memory stays in the process (no page faults on reuse).

Each case runs in a fresh interpreter (the malloc settings are process-wide): it allocates,
writes and frees a 64 MiB buffer twice, as XLA CPU does with a program's temp buffer on
every run, and reports the minor page faults of the second round. Without the settings
glibc serves such a buffer with a fresh mmap each time, so all 16,384 of its 4 KiB pages
fault again; with them, the second round reuses the freed pages.
"""

import json
import os
import subprocess
import sys

import pytest

from pali_pax.core import host_memory

PROBE = r"""
import ctypes, json, resource, sys
from pali_pax.core import host_memory
kept = host_memory.keep_freed_memory()
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
size = 64 << 20

def round_trip():
  p = libc.malloc(size)
  ctypes.memset(p, 1, size)  # touch every page, as a program writing its buffer does
  libc.free(p)

round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
round_trip()
print(json.dumps({'kept': kept, 'faults': resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""

PAGES = (64 << 20) // 4096


def probe(**env: str) -> dict:
  proc = subprocess.run(
    [sys.executable, '-c', PROBE], env={**os.environ, **env}, capture_output=True, text=True
  )
  assert proc.returncode == 0, proc.stderr
  return json.loads(proc.stdout)


@pytest.mark.skipif(not host_memory._glibc(), reason='the settings are glibc malloc options')
def test_freed_buffer_is_reused_without_page_faults():
  kept = probe(JAX_PLATFORMS='cpu')
  assert kept['kept'] and kept['faults'] < PAGES // 100
  # The opt-out: glibc's defaults.
  default = probe(JAX_PLATFORMS='cpu', **{host_memory.DEFAULTS_ENV: '1'})
  assert not default['kept'] and default['faults'] >= PAGES * 0.9


def test_only_where_jax_computes_on_the_cpu(monkeypatch, tmp_path):
  monkeypatch.setenv('JAX_PLATFORMS', 'tpu')
  assert not host_memory.computes_on_cpu()
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  assert host_memory.computes_on_cpu()
  monkeypatch.delenv('JAX_PLATFORMS')
  node = tmp_path / 'accel0'
  monkeypatch.setattr(host_memory, 'ACCELERATOR_NODES', (str(tmp_path / 'accel*'),))
  assert host_memory.computes_on_cpu()
  node.write_text('')  # a TPU host's device node
  assert not host_memory.computes_on_cpu()
  assert not probe(JAX_PLATFORMS='tpu')['kept']


def test_pali_pax_process_keeps_freed_memory(monkeypatch):
  """`pali-pax` as a process's entry point applies the settings (before any command import)."""
  import gc

  from pali_pax.cli import process

  calls = []
  monkeypatch.setattr(process.host_memory, 'keep_freed_memory', lambda: calls.append(1))
  monkeypatch.setitem(process._state, 'managed', False)
  monkeypatch.setitem(process._state, 'held', False)
  enabled = gc.isenabled()
  try:
    process.manage()
  finally:
    if enabled:
      gc.enable()
  assert calls == [1] and process.managed()
