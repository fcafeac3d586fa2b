"""Seeded, bounded fuzz of the command line (shared parts: tests/fuzzing.py).

CLI          70 malformed command lines (one line on stderr, non-zero exit)
"""

import string

import numpy as np

from pali_pax import cli
from tests import fuzzing


def _word(rng):
  chars = string.ascii_letters + string.digits + '_.:/é中 '
  return 'zz' + ''.join(chars[j] for j in rng.integers(len(chars), size=rng.integers(1, 12)))


def _cli_case(rng, tmp_path):
  """(argv, strings of which the error line must contain one)."""
  w = _word(rng)
  bad_int = ['0', '-3', 'ten', '1.5', ''][rng.integers(5)]
  kind = rng.integers(9)
  return [
    (['params', w], [w]),
    (['tasks', 'show', w], [w]),
    (['tasks', 'show', 'pali_synthetic_vqa', '--split', w], [w]),
    (['demo', '--steps', bad_int], ['--steps']),
    (['tasks', 'list', '--n', bad_int], ['--n']),
    ([w], [w]),
    (['experiments', '--' + w.replace(' ', '')], [w.replace(' ', '')]),
    (['convert', '--exp', w], ['--job_log_dir']),
    (['convert', '--exp', w, '--job_log_dir', str(tmp_path / 'j'), '--mt5', 'x'], [w]),
  ][kind]


def test_fuzz_cli(capsys, tmp_path):
  rng = np.random.default_rng(fuzzing.SEED + 3)
  failures = []
  for i in range(70):
    argv, names = _cli_case(rng, tmp_path)
    try:
      code = cli.main(argv)
    except SystemExit as e:
      code = e.code
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    case = f'cli[{i}] {argv}'
    if code in (0, None):
      failures.append(f'{case}: exit status {code}')
    elif len(lines) != 1 or not lines[0].startswith('pali-pax'):
      failures.append(f'{case}: stderr is not one pali-pax line: {lines[:5]}')
    elif not any(n in lines[0] for n in names):
      failures.append(f'{case}: {lines[0]!r} names none of {names}')
  assert not failures, '\n'.join(failures)
