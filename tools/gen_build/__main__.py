"""Writes every BUILD file from the Python sources' imports (rules: targets.py).

python -m tools.gen_build            # (re)writes the BUILD files
python -m tools.gen_build --check    # exit status 1, listing the BUILD files that differ
"""

from __future__ import annotations

import os
import sys

from tools.gen_build.starlark import build_file
from tools.gen_build.targets import Repo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def generate(root: str) -> tuple[dict[str, str], list[str]]:
  """({BUILD path: text}, problems: imports that resolve to nothing)."""
  repo = Repo(root)
  rules = repo.rules()
  files = {
    os.path.join(pkg, 'BUILD'): build_file(pkg, rules[pkg], repo.exports[pkg])
    for pkg in sorted(repo.packages)
  }
  return files, repo.problems


def stale(root: str, files: dict[str, str]) -> list[str]:
  """The BUILD files that differ from `files`, or that no package needs any more."""
  out = []
  for path, text in files.items():
    full = os.path.join(root, path)
    if not os.path.exists(full) or open(full).read() != text:
      out.append(path)
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if not d.startswith('.') and d not in ('build', 'runs')]
    path = os.path.relpath(os.path.join(dirpath, 'BUILD'), root)
    if 'BUILD' in filenames and path not in files:
      out.append(path)
  return sorted(out)


def main(argv: list[str]) -> int:
  files, problems = generate(ROOT)
  for p in problems:
    print(p, file=sys.stderr)
  differ = stale(ROOT, files)
  if '--check' in argv:
    for path in differ:
      print(f'{path} differs from `python -m tools.gen_build`')
    return int(bool(differ or problems))
  for path in differ:
    full = os.path.join(ROOT, path)
    if path in files:
      with open(full, 'w') as f:
        f.write(files[path])
    else:
      os.remove(full)
  print(f'{len(differ)} BUILD file(s) written or removed')
  return int(bool(problems))


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
