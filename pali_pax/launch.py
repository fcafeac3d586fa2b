"""Runs `paxml.main` in this process with our experiments loaded.

`python -m paxml.main --exp=pali_pax.fiddle_configs.experiments.PaliTinySynthetic`
also works (paxml imports the module named in --exp, which applies the jax
shims paxml needs, see `pali_pax.jax_compat`); this wrapper additionally lets
`--exp` use the short registered class name, and checks checkpoint integrity:
saves get checksums, and a corrupt newest checkpoint is moved aside so paxml
restores the newest intact one (`pali_pax.checkpoint_integrity`).
"""

import runpy
import sys


def run_paxml_main(argv: list[str]) -> int:
  """Equivalent of `python -m paxml.main ARGV`; returns the exit status."""
  from pali_pax import checkpoint_integrity
  from pali_pax.fiddle_configs import experiments  # noqa: F401  (registers them)

  argv = [_qualify_exp(a) for a in argv]
  checkpoint_integrity.prepare_paxml_run(argv)
  sys.argv = ['paxml.main', *argv]
  try:
    runpy.run_module('paxml.main', run_name='__main__', alter_sys=True)
  except SystemExit as e:
    return int(e.code or 0)
  return 0


def _qualify_exp(arg: str) -> str:
  """`--exp=PaliTinySynthetic` -> the module-qualified name paxml can import."""
  if arg.startswith('--exp=') and '.' not in arg[len('--exp=') :]:
    return f'--exp=pali_pax.fiddle_configs.experiments.{arg[len("--exp=") :]}'
  return arg
