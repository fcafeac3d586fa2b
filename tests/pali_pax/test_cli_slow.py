"""`pali-pax` as the console runs it: a fresh interpreter (importing paxml), exit status 1
and one line naming the input on a user error (the in-process checks: test_cli.py)."""

import subprocess

import pytest

from tests.runs import cli_command, cli_env

pytestmark = pytest.mark.slow


def test_console_exit_status():
  cmd = cli_command('params', 'NoSuchExperiment')
  proc = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), timeout=300)
  assert proc.returncode == 1
  ours = [ln for ln in proc.stderr.splitlines() if ln.startswith('pali-pax')]
  assert ours == [proc.stderr.strip().splitlines()[-1]]
  assert "unknown experiment 'NoSuchExperiment'" in ours[0]
  assert 'Traceback' not in proc.stderr
