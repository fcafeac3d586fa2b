"""Entry point of the Bazel py_test targets: runs pytest on the files given as arguments.

Each py_test has `main = "//tests:pytest_main.py"` and `args = ["$(rootpath test_x.py)"]`.
pytest reads the repository's pyproject.toml (markers, warning filters) but not its
`addopts`: the `-m 'not slow'` default is replaced by Bazel's `slow` tag, so a
target runs every test of its file. Bazel runs tests from the runfiles root, where
the paths are relative to the repository root.
"""

import os
import sys

import pytest


def pytest_args(argv: list[str]) -> list[str]:
  """pytest's command line for the test files in argv."""
  args = ['-c', 'pyproject.toml', '--rootdir', '.', '-o', 'addopts=', '-p', 'no:cacheprovider']
  args += ['--import-mode=importlib']
  if os.environ.get('XML_OUTPUT_FILE'):  # set by `bazel test`
    args.append(f'--junitxml={os.environ["XML_OUTPUT_FILE"]}')
  return args + argv


def main(argv: list[str]) -> int:
  """Runs pytest; returns its exit status."""
  return int(pytest.main(pytest_args(argv)))


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
