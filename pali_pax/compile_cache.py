"""JAX's persistent compilation cache for `pali-pax train / demo / eval / predict`.

XLA compilation dominates short CPU runs (about 2 min before the tiny model's first
train step on a loaded 2-core machine). With the cache on, a rerun of the same
program (same shapes, same jax/XLA, same machine type) loads the compiled
executable from disk instead.

Where: $PALI_PAX_CACHE_DIR if set, else ~/.cache/pali_pax/jax (`DEFAULT_DIR`).
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
"""

import os

DEFAULT_DIR = os.path.join(os.path.expanduser('~'), '.cache', 'pali_pax', 'jax')


def cache_dir() -> str:
  """The cache folder: $PALI_PAX_CACHE_DIR, else DEFAULT_DIR."""
  return os.environ.get('PALI_PAX_CACHE_DIR') or DEFAULT_DIR


def enable(directory: str | None = None) -> str:
  """Turns the persistent cache on for this process (every compile, however short)."""
  import jax

  directory = directory or cache_dir()
  os.makedirs(directory, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', directory)
  # jax's defaults skip programs compiling in under 1 s; on this scale many do.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  return directory


def apply(no_cache: bool) -> None:
  """enable() unless the user turned the cache off."""
  if not no_cache:
    enable()
