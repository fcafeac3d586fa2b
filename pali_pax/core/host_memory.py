"""Keep freed host memory in the process, so XLA CPU's per-run buffers stop page-faulting.

XLA CPU allocates a program's temp buffer (1.4 GiB for the `small` benchmark's train
step, several GiB at larger shapes) with malloc at every run, from one of its worker
threads, and frees it when the run ends. glibc serves an allocation that large with a
fresh `mmap` (it is above the mmap threshold and does not fit a thread arena's heap) and
gives it back with `munmap`, so every step pays the kernel to fault in and zero the whole
buffer again: ~375,000 minor page faults per small train step (`strace`: one 1.5 GB mmap
and its munmap per step).

`keep_freed_memory()` sets glibc's malloc, through `mallopt`, to keep those pages:
- one arena (`M_ARENA_MAX` 1): worker threads allocate from the main heap, which grows
  with `brk` and has no size limit;
- no mmap-served allocations (`M_MMAP_MAX` 0);
- no trimming of the heap's free top (`M_TRIM_THRESHOLD` -1, "never").
From the second run on, a program's buffers come from memory freed by the last run: no
page faults. Measured: docs/benchmarks.md, "Host memory kept between steps".

The cost is that the process's resident memory stays at its high-water mark instead of
shrinking between runs (the peak itself is that of the largest run either way), and that
all threads share one malloc lock. Only XLA CPU gains from it (on a TPU or GPU the
buffers live in device memory), while a large accelerator host's many input threads
would contend on that lock, so it applies only where jax will compute on the CPU: no
accelerator device node (`ACCELERATOR_NODES`), or `JAX_PLATFORMS=cpu`. Call it before
the threads that allocate are started (before jax creates its CPU client); it changes
nothing outside glibc (musl, macOS) or when `PALI_PAX_MALLOC_DEFAULTS=1` is set.
`pali-pax` applies it to its own process (`pali_pax.cli.process.manage`); a process that
runs `paxml.main` directly gets the same with the environment variable
`GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=18446744073709551615`.
"""

import ctypes
import glob
import os

DEFAULTS_ENV = 'PALI_PAX_MALLOC_DEFAULTS'
# glibc's mallopt parameters (malloc.h) and the values set.
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1))
# Device nodes of the accelerators jax drives: TPU (v4: accel, v5e and later: vfio), NVIDIA.
ACCELERATOR_NODES = ('/dev/accel*', '/dev/vfio/[0-9]*', '/dev/nvidia[0-9]*')


def computes_on_cpu() -> bool:
  """Whether jax in this process will run on the CPU (JAX_PLATFORMS, else no device node)."""
  platforms = os.environ.get('JAX_PLATFORMS', '')
  if platforms:
    return platforms.split(',')[0].strip() == 'cpu'
  return not any(glob.glob(pattern) for pattern in ACCELERATOR_NODES)


def _glibc() -> bool:
  try:
    return os.confstr('CS_GNU_LIBC_VERSION').startswith('glibc')
  except (ValueError, OSError, AttributeError):  # not a glibc system (or no confstr)
    return False


def keep_freed_memory() -> bool:
  """Applies `SETTINGS` with glibc's `mallopt`; returns whether they are in force."""
  if os.environ.get(DEFAULTS_ENV) == '1' or not _glibc() or not computes_on_cpu():
    return False
  mallopt = ctypes.CDLL('libc.so.6').mallopt
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  return all(mallopt(param, value) == 1 for param, value in SETTINGS)
