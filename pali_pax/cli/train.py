"""`pali-pax train`: `paxml.main` in this process with our experiments loaded.

`pali-pax train --exp=NAME --fdl.ATTR=VALUE ... --job_dir=DIR` resolves the
experiment and its overrides (`resolve_flags`), records them with the vocabulary
in DIR/pali_pax.json (`pali_pax.job_config`), turns on the persistent compilation
cache (`pali_pax.compile_cache`; `--no_compilation_cache` turns it off) and runs
`paxml.main` with the Fiddle form of those flags, which paxml 1.4 applies. It also
checks checkpoint integrity: saves get checksums, and a corrupt newest checkpoint is
moved aside so paxml restores the newest intact one (`pali_pax.checkpoint.restoring`).
`--job_dir` is given to paxml as its `--job_log_dir` (either spelling works). Every
other flag goes to paxml unchanged. `python -m paxml.main
--exp=pali_pax.fiddle_configs.experiments.NAME` also works, without overrides,
metadata, cache or checksums.

The flags that select the experiment, all of which become one experiment name
plus one dict of overrides:

  --exp=NAME --fdl.ATTR=VALUE ...                 (our short form)
  --fdl_config=pali_pax.fiddle_configs.experiments.experiment_config('NAME') --fdl.ATTR=VALUE
  --fdl_config=pali_pax.fiddle_configs.experiments.tiny_synthetic --fdl.ATTR=VALUE

VALUE is a Python literal as in Fiddle (`--fdl.NUM_TRAIN_STEPS=200`,
`--fdl.ICI_MESH_SHAPE=(1,1,1)`, true / false); a value that is not a literal is
taken as a string (`--fdl.DATA_DIR=/data/coco`, `--fdl.MODEL=tiny`). Each flag may
also be written `--flag VALUE`.
"""

import argparse
import ast
import re
import runpy
import sys
from typing import Any

from absl import logging

from pali_pax import compile_cache, job_config
from pali_pax.checkpoint import restoring
from pali_pax.cli import common, pretrain_vit
from pali_pax.core import errors
from pali_pax.fiddle_configs import experiments

EXPERIMENTS_MODULE = experiments.__name__
_CALL = re.compile(r'^(?:pali_pax\.fiddle_configs\.experiments\.)?(\w+)(?:\((.*)\))?$', re.S)


def parse_value(text: str) -> Any:
  """A `--fdl.ATTR=` value: true / false, a Python literal, else the string itself."""
  if text.lower() in ('true', 'false'):
    return text.lower() == 'true'
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _fdl_config_target(spec: str) -> tuple[str, dict[str, Any]]:
  """(experiment, overrides) of `--fdl_config=<our module>.fn(...)`."""
  m = _CALL.match(spec.strip())
  fn = getattr(experiments, m.group(1), None) if m else None
  if fn is None or not callable(fn):
    raise errors.InputValidationError(
      f'--fdl_config={spec}: pali-pax train reads functions of {EXPERIMENTS_MODULE} '
      "(experiment_config('NAME') or tiny_synthetic); use --exp=NAME --fdl.ATTR=VALUE"
    )
  call = ast.parse(f'f({m.group(2) or ""})', mode='eval').body
  args = [ast.literal_eval(a) for a in call.args]
  kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
  cfg = fn(*args, **kwargs)
  return cfg.__fn_or_cls__.__name__, dict(cfg.__arguments__)


def resolve_flags(argv: list[str]) -> tuple[str | None, dict[str, Any], list[str]]:
  """(experiment, overrides, paxml argv) of `pali-pax train` flags.

  Returns experiment None (and argv unchanged) when neither --exp nor
  --fdl_config names one of our experiments (e.g. --fdl_config_file).
  """
  experiment, overrides = None, {}
  found, rest = common.read_flags(argv, ['exp', 'fdl_config'], prefixes=['fdl.'])
  for name, value in found:
    if value is None:
      raise errors.InputValidationError(f'--{name} needs a value: write --{name}=VALUE')
    if name == 'exp':
      experiment = value.removeprefix(EXPERIMENTS_MODULE + '.')
    elif name == 'fdl_config':
      experiment, base = _fdl_config_target(value)
      overrides = {**base, **overrides}
    else:
      overrides[name[len('fdl.') :]] = parse_value(value)
  if experiment is None:
    if overrides:
      raise errors.InputValidationError('--fdl.ATTR=VALUE needs --exp=NAME (or --fdl_config=...)')
    return None, {}, list(argv)
  if '.' in experiment:  # another package's experiment: paxml resolves it itself
    if overrides:
      raise errors.InputValidationError(
        f'--exp={experiment}: --fdl.* overrides apply to our experiments only'
      )
    return None, {}, list(argv)
  paxml_argv = [f"--fdl_config={EXPERIMENTS_MODULE}.experiment_config('{experiment}')"]
  paxml_argv += [f'--fdl.{k}={v!r}' for k, v in overrides.items()]
  return experiment, overrides, paxml_argv + rest


def job_dir_flags(argv: list[str]) -> tuple[str | None, list[str]]:
  """(the job dir, argv with it as paxml's `--job_log_dir=DIR`) of `--job_dir` / `--job_log_dir`."""
  found, rest = common.read_flags(argv, ['job_dir', 'job_log_dir'])
  job_dir = found[-1][1] if found else None
  return job_dir, rest + ([f'--job_log_dir={job_dir}'] if job_dir is not None else [])


def no_cache_flag(argv: list[str]) -> tuple[bool, list[str]]:
  """(was --no_compilation_cache given, argv without it): paxml does not know the flag."""
  return common.NO_CACHE in argv, [a for a in argv if a != common.NO_CACHE]


def num_hosts(argv: list[str]) -> int:
  """The process count paxml's `--num_hosts` flag gives (1 when absent)."""
  try:
    return int(common.flag_value(argv, 'num_hosts') or 1)
  except ValueError:
    return 1  # paxml's flag parser reports the bad value


def _host_idx(argv: list[str]) -> int:
  """paxml's `--host_idx` (0 when absent)."""
  try:
    return int(common.flag_value(argv, 'host_idx') or 0)
  except ValueError:
    return 0  # paxml's flag parser reports the bad value


def prepare(argv: list[str]) -> list[str]:
  """Everything `pali-pax train ARGV` does before paxml starts; returns paxml's argv.

  Compilation cache, the experiment and its overrides resolved and validated,
  DIR/pali_pax.json written (process 0), checkpoint integrity installed (paxml
  checks the newest checkpoint where it creates its checkpointer).
  """
  no_cache, argv = no_cache_flag(argv)
  if not no_cache and num_hosts(argv) > 1:
    logging.warning('pali-pax train: compilation cache off in a multi-process job (compile_cache)')
    no_cache = True
  compile_cache.apply(no_cache)
  job_dir, argv = job_dir_flags(argv)
  experiment, overrides, paxml_argv = resolve_flags(argv)
  if experiment is None:
    logging.warning('pali-pax train: not one of our experiments; no pali_pax.json written')
  else:
    # Built now, a bad attribute or a job that cannot start fails here, not in paxml.
    exp = job_config.build(experiment, overrides)
    if job_dir:
      pretrain_vit.check_started(exp, experiment, job_dir)
      if _host_idx(argv) == 0:
        job_config.write(job_dir, experiment, overrides)
  restoring.install()
  return paxml_argv


def run_argv(argv: list[str]) -> int:
  """Equivalent of `python -m paxml.main ARGV` (see the module docstring); exit status."""
  sys.argv = ['paxml.main', *prepare(argv)]
  try:
    runpy.run_module('paxml.main', run_name='__main__', alter_sys=True)
  except SystemExit as e:
    return int(e.code or 0)
  return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The flags `pali-pax train --help` describes (train itself passes argv to paxml)."""
  p.usage = 'pali-pax train --exp=NAME [--fdl.ATTR=VALUE ...] --job_dir=DIR [PAXML_FLAGS]'
  p.epilog = (
    "Any other flag is paxml.main's (e.g. --mode=train, --eval_on_test, "
    '--decode_during_train; `python -m paxml.main --helpfull` lists them).'
  )
  common.add_exp(p, help='registered experiment (`pali-pax experiments`)')
  p.add_argument('--fdl.ATTR', metavar='VALUE', help='override an experiment attribute')
  p.add_argument('--fdl_config', help="or: ...experiments.experiment_config('NAME')")
  common.add_job_dir(p, help='job dir for checkpoints and summaries (paxml --job_log_dir)')
  common.add_no_cache(p)
