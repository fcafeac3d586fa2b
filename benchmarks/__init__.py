"""Benchmarks of pali_pax on the local machine: `python -m benchmarks.run --help`.

Optional dependencies (torch, transformers, matplotlib; requirements/bench-lock.txt)
are imported only by the modules that need them (peer_torch, report's plot).

A benchmark started as `python -m benchmarks.NAME` runs with the host-memory settings
every `pali-pax` process has (`pali_pax.core.host_memory`: freed memory stays in the
process), applied here, before jax or torch start a thread; the peer shares them, since
both run in one process. `PALI_PAX_MALLOC_DEFAULTS=1` measures glibc's defaults instead.
Imported any other way (tests), the package changes nothing in the process.
"""

import sys

if sys.argv[:1] == ['-m']:  # Python sets argv[0] to '-m' while it imports a -m module's package
  from pali_pax.core import host_memory

  host_memory.keep_freed_memory()
