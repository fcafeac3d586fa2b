"""Checks the import contracts of pyproject.toml ([tool.importlinter]) with import-linter.

    python -m tools.lint_imports      # `make lint` runs it; exit status 1 when a contract breaks

import-linter (grimp) finds a package's modules by walking its folder on disk, but
pyproject.toml's package-dir installs other folders into the package (`layers/` is
`pali_pax.layers`), and the editable install maps them with an import hook that grimp
does not see. So the package is first laid out as the wheel has it, in a temporary folder
of links to the sources, and the linter reads that. It also fails when a source package
is missing from pyproject.toml's package list (the wheel would lack it).
"""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib

from importlinter.cli import lint_imports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def link_tree(root: str, out: str) -> list[str]:
  """Links the .py files of the linted packages under `out` as the wheel lays them out.

  Returns the packages found that pyproject.toml's package list lacks.
  """
  with open(os.path.join(root, 'pyproject.toml'), 'rb') as f:
    tool = tomllib.load(f)['tool']
  folders = dict(tool['setuptools']['package-dir'])
  for package in tool['importlinter']['root_packages']:  # e.g. benchmarks/, not installed
    folders.setdefault(package, package.replace('.', '/'))
  packages = set()
  for package, folder in folders.items():
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, folder)):
      dirnames[:] = sorted(d for d in dirnames if d != '__pycache__')
      rel = os.path.relpath(dirpath, os.path.join(root, folder))
      target = os.path.normpath(os.path.join(out, *package.split('.'), rel))
      if '__init__.py' in filenames:
        packages.add(os.path.relpath(target, out).replace(os.sep, '.'))
      os.makedirs(target, exist_ok=True)
      for name in filenames:
        if name.endswith('.py'):
          os.symlink(os.path.join(dirpath, name), os.path.join(target, name))
  installed = set(tool['setuptools']['packages'])
  return sorted(p for p in packages if p.split('.')[0] in installed and p not in installed)


def main() -> int:
  """Runs lint-imports on the linked packages; 1 when a contract is broken."""
  config = os.path.join(ROOT, 'pyproject.toml')
  with tempfile.TemporaryDirectory() as out:
    missing = link_tree(ROOT, out)
    os.chdir(out)  # lint-imports puts the working folder first on sys.path
    status = lint_imports(config_filename=config, no_cache=True, no_logo=True)
  if missing:
    print(f'pyproject.toml [tool.setuptools] packages lacks {missing}', file=sys.stderr)
  return int(bool(status or missing))


if __name__ == '__main__':
  sys.exit(main())
