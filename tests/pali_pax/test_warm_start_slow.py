"""Slow tier of test_warm_start.py: a printing command in a fresh interpreter."""

import os
import subprocess

import pytest

from pali_pax import cli
from tests import runs

pytestmark = pytest.mark.slow


def test_printing_command_exits_fast_with_all_its_lines(capsys):
  assert cli.main(['experiments']) == 0
  want = capsys.readouterr().out
  proc = subprocess.run(
    runs.cli_command('experiments'),
    capture_output=True,
    text=True,
    timeout=600,
    env=runs.cli_env(),
    cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout == want and 'PaliTinySynthetic' in want
