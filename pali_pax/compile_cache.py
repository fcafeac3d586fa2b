"""JAX's persistent compilation cache for `pali-pax train / demo / eval / predict`.

XLA compilation dominates short CPU runs (about 2 min before the tiny model's first
train step on a loaded 2-core machine). With the cache on, a rerun of the same
program (same shapes, same jax/XLA, same machine type) loads the compiled
executable from disk instead.

Where: `<root>/<machine>-<key>`, root being $PALI_PAX_CACHE_DIR if set, else
~/.cache/pali_pax/jax (`DEFAULT_DIR`). The key (`host_key`) hashes the CPU's
instruction-set flags (/proc/cpuinfo) with the jax and jaxlib versions. JAX's own
cache key names the device only as 'cpu', so without it a cache shared between
machines (a home directory on NFS) would hand AVX-512 code compiled on one host to
an AVX2-only host, where it dies with SIGILL; keyed, each ISA has its own folder.

Off: `--no_compilation_cache` on any of those commands, and always in a job of
several processes (`--num_hosts` > 1, as `pali-pax launch-local` runs; `pali_pax.cli`
reads both flags and calls `apply`): JAX writes
the cache from process 0 only, so process 0 loads programs the others still
compile, and on CPU the first collective after such a compile fails when one
process waits more than gloo's fixed 30 s for the others (seen here: process 1
compiling for 150 s while process 0 loaded). A job runs at its slowest
process's pace anyway, so the cache buys nothing there. Entries are keyed by the
program, jax / XLA version and device, so a stale entry is never used; delete the
folder to reclaim disk.

Warm loads on AVX-512 hosts: XLA (jaxlib 0.8) adds the LLVM *tuning* attributes
`+prefer-no-scatter,+prefer-no-gather` to every program it compiles for an AVX-512
CPU, records them with the program's CPU features, and on loading compares that list
with the host's feature list, which never holds tuning attributes. So every cached
program logged two `cpu_aot_loader ... Target machine feature +prefer-no-scatter is
not supported on the host machine ... SIGILL` errors although it was compiled on this
very CPU (newer XLA skips `prefer-` / `fast-` attributes in that check). `enable`
drops exactly those lines while a cached program loads; a missing real feature
(`+avx512f`, ...) is still printed.
"""

import contextlib
import functools
import hashlib
import importlib.metadata
import os
import platform
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

DEFAULT_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'pali_pax', 'jax')

# /proc/cpuinfo flags that say nothing about the instructions a program may use but
# differ between kernels, microcode and hypervisors on one CPU model (speculation
# mitigations, virtualisation, timers): left out so such hosts share a folder.
_NOT_ISA = re.compile(
  r'^(hypervisor|.*tsc.*|ibrs.*|ibpb.*|.*stibp|.*ssbd|md_clear|flush_l1d|arch_capabilities|'
  r'spec_ctrl|srbds_ctrl|tsx_ctrl|rsb_ctrl|retbleed.*|ibt|pti|split_lock_detect|'
  r'bus_lock_detect|.*_fault|user_shstk|arat|pln|pts|hwp.*|epb|dtherm|ida|tpr_shadow|'
  r'flexpriority|ept.*|vpid|vnmi|vmx|svm|npt|lbrv|nrip_save|.*_vmsave_vmload|vgif|'
  r'v_spec_ctrl|avic|pausefilter|pfthreshold|decodeassists|flushbyasid|.*clean)$'
)

# The loader's message for a tuning attribute (see the module docstring).
_TUNING_NOISE = re.compile(
  rb'cpu_aot_loader.*Target machine feature \+(prefer|fast)-[\w.-]+ is not'
)


def cpu_flags(cpuinfo: str = '/proc/cpuinfo') -> list[str]:
  """The instruction-set flags of this host's first CPU, sorted (empty when unreadable)."""
  try:
    with open(cpuinfo) as f:
      text = f.read()
  except OSError:
    return []
  # x86: 'flags : ...'; arm64: 'Features : ...'.
  m = re.search(r'^(?:flags|Features)\s*:(.*)$', text, re.M)
  return sorted({f for f in (m.group(1).split() if m else []) if not _NOT_ISA.match(f)})


def host_key(flags: Iterable[str] | None = None) -> str:
  """`<machine>-<12 hex>`: the CPU architecture and a hash of its ISA flags + jax/jaxlib.

  flags: the CPU's flags (default: `cpu_flags()`); hosts whose flags differ get
  different keys, hosts with the same flags and jax the same key.
  """
  flags = cpu_flags() if flags is None else flags
  versions = []
  for package in ('jax', 'jaxlib'):
    try:
      versions.append(f'{package}={importlib.metadata.version(package)}')
    except importlib.metadata.PackageNotFoundError:
      versions.append(f'{package}=?')
  if not flags:  # no /proc/cpuinfo (macOS, ...): the processor string is all we have
    flags = [platform.processor() or 'unknown']
  text = '\n'.join([platform.machine(), *versions, *sorted(set(flags))])
  return f'{platform.machine() or "cpu"}-{hashlib.sha256(text.encode()).hexdigest()[:12]}'


def cache_root() -> str:
  """The folder that holds one cache per host key: $PALI_PAX_CACHE_DIR, else DEFAULT_DIR."""
  return os.environ.get('PALI_PAX_CACHE_DIR') or DEFAULT_DIR


def cache_dir(key: str | None = None) -> str:
  """This host's cache folder: `<cache_root()>/<key>` (key default: `host_key()`)."""
  return os.path.join(cache_root(), key or host_key())


def enable(directory: str | None = None, key: str | None = None) -> str:
  """Turns the persistent cache on for this process (every compile, however short).

  directory: the cache folder itself (default: `cache_dir(key)`).
  """
  import jax

  directory = directory or cache_dir(key)
  os.makedirs(directory, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', directory)
  # jax's defaults skip programs compiling in under 1 s; on this scale many do.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  _quiet_tuning_attribute_errors()
  return directory


def apply(no_cache: bool) -> None:
  """enable() unless the user turned the cache off."""
  if not no_cache:
    enable()


def is_tuning_noise(line: bytes) -> bool:
  """Whether a stderr line is the loader's error about an LLVM tuning attribute only."""
  return _TUNING_NOISE.search(line) is not None


class _Stderr:
  """Holds file descriptor 2 in a temporary file while cached programs load.

  XLA logs from C++ straight to fd 2, so sys.stderr cannot filter it. Loads may
  overlap in threads: the first to enter redirects, the last to leave restores fd 2
  and writes back every captured line except the tuning-attribute errors.
  """

  def __init__(self) -> None:
    self._lock = threading.Lock()
    self._depth = 0
    self._saved = -1
    self._file: Any = None

  @contextlib.contextmanager
  def filtered(self) -> Iterator[None]:
    with self._lock:
      if self._depth == 0:
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
      self._depth += 1
    try:
      yield
    finally:
      with self._lock:
        self._depth -= 1
        if self._depth == 0:
          sys.stderr.flush()
          os.dup2(self._saved, 2)
          os.close(self._saved)
          self._file.seek(0)
          kept = [line for line in self._file if not is_tuning_noise(line)]
          self._file.close()
          if kept:
            os.write(2, b''.join(kept))


_STDERR = _Stderr()


def _quiet_tuning_attribute_errors() -> None:
  """Wraps jax's cache read (where XLA loads a cached program) in `_STDERR.filtered`."""
  from jax._src import compilation_cache

  read = getattr(compilation_cache, 'get_executable_and_time', None)
  if read is None or getattr(read, '_pali_pax_quiet', False):
    return  # another jax (nothing to wrap), or already wrapped

  @functools.wraps(read)
  def quiet_read(*args: Any, **kwargs: Any) -> Any:
    with _STDERR.filtered():
      return read(*args, **kwargs)

  quiet_read._pali_pax_quiet = True  # type: ignore[attr-defined]
  compilation_cache.get_executable_and_time = quiet_read


def wrapped(fn: Callable[..., Any]) -> bool:
  """Whether `fn` is the filtered cache read (for tests)."""
  return bool(getattr(fn, '_pali_pax_quiet', False))
