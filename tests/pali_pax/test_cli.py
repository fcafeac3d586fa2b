"""`pali-pax` errors: one line naming the input, non-zero exit, traceback with --verbose."""

import os
import subprocess
import sys

import pytest

from pali_pax import cli


def _run(capsys, *argv):
  """(exit status, stderr lines) of `pali-pax ARGV` run in this process."""
  try:
    code = cli.main(list(argv))
  except SystemExit as e:  # argparse usage errors exit directly
    code = e.code
  lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
  return code, lines


@pytest.mark.parametrize(
  ('argv', 'code', 'match'),
  [
    (['params', 'NoSuchExperiment'], 1, "unknown experiment 'NoSuchExperiment'"),
    (['tasks', 'show', 'no_such_task'], 1, "Unknown task or mixture 'no_such_task'"),
    (['tasks', 'show'], 1, 'needs a task name'),
    (['tasks', 'show', 'pali_synthetic_vqa', '--split', 'nope'], 1, "no split 'nope'"),
    (['demo', '--steps', '0'], 2, "argument --steps: '0' must be >= 1"),
    (['demo', '--steps', 'ten'], 2, "'ten' is not an integer"),
    (['tasks', 'list', '--n', '-1'], 2, "argument --n: '-1' must be >= 1"),
    (['frobnicate'], 2, "invalid choice: 'frobnicate'"),
    (['convert', '--exp', 'x'], 2, 'the following arguments are required: --job_log_dir, --mt5'),
    (['experiments', '--bogus'], 2, 'unrecognized arguments: --bogus'),
    ([], 2, 'the following arguments are required: command'),
  ],
)
def test_errors_are_one_line_and_non_zero(capsys, argv, code, match):
  got, lines = _run(capsys, *argv)
  assert got == code
  assert len(lines) == 1, lines
  assert lines[0].startswith('pali-pax') and 'error:' in lines[0]
  assert match in lines[0]


def test_verbose_prints_the_traceback(capsys):
  code, lines = _run(capsys, '--verbose', 'params', 'NoSuchExperiment')
  assert code == 1
  assert lines[0] == 'Traceback (most recent call last):'
  assert any('ConfigError' in ln for ln in lines)
  assert lines[-1].startswith("pali-pax: error: unknown experiment 'NoSuchExperiment'")
  # --verbose may also follow the command (except for train, whose flags are paxml's).
  code, lines = _run(capsys, 'params', 'NoSuchExperiment', '-v')
  assert code == 1 and lines[0] == 'Traceback (most recent call last):'


def test_unexpected_errors_say_so_in_one_line():
  line = cli._one_line(RuntimeError('boom\nsecond line'))
  assert line == (
    'pali-pax: error: RuntimeError: boom [...] (unexpected; --verbose shows the traceback)'
  )
  assert cli._one_line(FileNotFoundError('no such file: x')) == 'pali-pax: error: no such file: x'


@pytest.mark.slow  # a fresh interpreter importing paxml
def test_console_exit_status():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
    [sys.executable, '-m', 'pali_pax.cli', 'params', 'NoSuchExperiment'],
    capture_output=True,
    text=True,
    env=env,
    timeout=300,
  )
  assert proc.returncode == 1
  ours = [ln for ln in proc.stderr.splitlines() if ln.startswith('pali-pax')]
  assert ours == [proc.stderr.strip().splitlines()[-1]]
  assert "unknown experiment 'NoSuchExperiment'" in ours[0]
  assert 'Traceback' not in proc.stderr
