"""The Bazel BUILD files declare what the Python sources really import (tools/check_build.py)."""

import os

from tools import check_build

# Under Bazel this file is a runfiles symlink: its real path is in the source tree.
ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def test_build_files_match_the_sources():
  problems = check_build.check(ROOT)
  assert not problems, 'BUILD files out of date (python -m tools.check_build):\n' + '\n'.join(
    problems
  )


def test_checker_sees_a_missing_dep(tmp_path):
  build = os.path.join(ROOT, 'pali_pax', 'BUILD')
  with open(build) as f:
    text = f.read()
  assert 'requirement("jax")' in text
  # The same tree with every jax requirement dropped from pali_pax/BUILD.
  checker = check_build.Checker(ROOT)
  for t in checker.targets.values():
    if t.package == 'pali_pax' and 'deps' in t.attrs:
      t.attrs['deps'] = [d for d in t.attrs['deps'] if d != '@pip//jax:pkg']
  problems = checker.run()
  assert any('//pali_pax:losses: missing dep requirement("jax")' in p for p in problems), problems
