"""The BUILD files are what `python -m tools.gen_build` generates from the sources' imports."""

import os

from tools.gen_build.__main__ import generate, stale

# bazel tag: local
# (Under Bazel this file is a runfiles link: its real path is in the source tree it checks.)
ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def test_build_files_match_a_fresh_generation():
  files, problems = generate(ROOT)
  assert not problems, '\n'.join(problems)
  differ = stale(ROOT, files)
  assert not differ, f'BUILD files out of date (run python -m tools.gen_build): {differ}'


def test_a_new_import_changes_the_generated_deps(tmp_path):
  # A copy of a small corner of the repo in which one module gains an import.
  for name in ('pyproject.toml', 'WORKSPACE', 'Makefile'):
    (tmp_path / name).write_text(open(os.path.join(ROOT, name)).read())
  (tmp_path / 'requirements').mkdir()
  for name in os.listdir(os.path.join(ROOT, 'requirements')):
    if name.endswith('.txt'):
      (tmp_path / 'requirements' / name).write_text(
        open(os.path.join(ROOT, 'requirements', name)).read()
      )
  pkg = tmp_path / 'pali_pax'
  pkg.mkdir()
  (pkg / '__init__.py').write_text('')
  (pkg / 'a.py').write_text('import numpy\n')
  (pkg / 'b.py').write_text('from pali_pax import a\n')
  before, problems = generate(str(tmp_path))
  assert not problems
  assert 'requirement("numpy")' not in before['pali_pax/BUILD'].split('name = "b"')[1]
  (pkg / 'b.py').write_text('import jax\nfrom pali_pax import a\n')
  after, _ = generate(str(tmp_path))
  b_rule = after['pali_pax/BUILD'].split('name = "b"')[1]
  assert '":a"' in b_rule and 'requirement("jax")' in b_rule
