"""Runs `paxml.main` in this process with our experiments loaded.

`pali-pax train --exp=NAME --fdl.ATTR=VALUE ... --job_log_dir=DIR` resolves the
experiment and its overrides (`pali_pax.job_config`), records them with the
vocabulary in DIR/pali_pax.json, turns on the persistent compilation cache
(`pali_pax.compile_cache`; `--no_compilation_cache` turns it off) and runs
`paxml.main` with the Fiddle form of those flags, which paxml 1.4 applies. It also
checks checkpoint integrity: saves get checksums, and a corrupt newest checkpoint is
moved aside so paxml restores the newest intact one (`pali_pax.checkpoint_integrity`).
`python -m paxml.main --exp=pali_pax.fiddle_configs.experiments.NAME` also works,
without overrides, metadata, cache or checksums.
"""

import runpy
import sys

from absl import logging


def _flag_value(argv: list[str], name: str) -> str | None:
  prefix = f'--{name}='
  return next((a[len(prefix) :] for a in reversed(argv) if a.startswith(prefix)), None)


def run_paxml_main(argv: list[str]) -> int:
  """Equivalent of `python -m paxml.main ARGV` (see the module docstring); exit status."""
  from pali_pax import checkpoint_integrity, compile_cache, job_config
  from pali_pax.fiddle_configs import experiments  # noqa: F401  (registers them)

  no_cache, argv = compile_cache.strip_flag(argv)
  if not no_cache and compile_cache.num_hosts(argv) > 1:
    logging.warning('pali-pax train: compilation cache off in a multi-process job (compile_cache)')
    no_cache = True
  compile_cache.apply(no_cache)
  experiment, overrides, paxml_argv = job_config.resolve_flags(argv)
  job_dir = _flag_value(argv, 'job_log_dir')
  # Building the experiment (write() does too) fails now on a bad attribute, not in paxml.
  if experiment is None:
    logging.warning('pali-pax train: not one of our experiments; no pali_pax.json written')
  elif job_dir and _flag_value(argv, 'host_idx') in (None, '0'):
    job_config.write(job_dir, experiment, overrides)
  else:
    job_config.build(experiment, overrides)
  checkpoint_integrity.prepare_paxml_run(paxml_argv)
  sys.argv = ['paxml.main', *paxml_argv]
  try:
    runpy.run_module('paxml.main', run_name='__main__', alter_sys=True)
  except SystemExit as e:
    return int(e.code or 0)
  return 0
