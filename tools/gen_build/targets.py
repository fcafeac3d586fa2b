"""The Bazel targets of the repository, derived from its Python files (as Gazelle does).

* one py_library per module, named after it (the package's `__init__.py`: after the
  folder); `mapped_py_library` in the folders pyproject.toml's package-dir maps onto
  other package names (//tools:package_dir.bzl); everything under tests/ is testonly;
* deps: the targets of the project modules a file imports, runs (`-m x`, runpy) or names
  in a string ('pali_pax.cli'), unless that would be a cycle; its package's `__init__`;
  for tests and conftest.py files the conftest.py files above them; third-party
  imports as `requirement("dist")` or the root `//:<dist>` wrapper (hubs.py); imports
  probed with `try: ... except ImportError` are optional and left out;
* data: files the sources name (`os.path.join(HERE, 'data', 'x.model')`, 'pyproject.toml')
  found from the file's folder upwards; a folder of another package is its filegroup;
* one py_test per tests/**/test_*.py run by //tests:pytest_main.py; tagged "slow" when it
  is slow (pytest.mark.slow, *_slow.py); size: enormous when slow, large when it starts
  subprocesses, medium when it depends on jax, else small; `# bazel tag: X` adds tags;
* a py_binary per [project.scripts] entry and per `python -m` module of the Makefile.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tomllib

from tools.gen_build.hubs import CORE_HUB, Hubs
from tools.gen_build.sources import SKIP_DIRS, module_name, py_files, read

PYTEST_MAIN = '//tests:pytest_main'


@dataclasses.dataclass
class Rule:
  kind: str
  name: str
  attrs: dict


class Repo:
  def __init__(self, root: str) -> None:
    self.root, self.problems = root, []
    with open(os.path.join(root, 'pyproject.toml'), 'rb') as f:
      project = tomllib.load(f)
    self.package_dir = project['tool']['setuptools'].get('package-dir', {})
    self.mapped = {d for p, d in self.package_dir.items() if p.replace('.', '/') != d}
    self.scripts = project['project'].get('scripts', {})
    self.hubs = Hubs(root)
    files = py_files(root)
    self.sources = {f: read(root, f, module_name(f, self.package_dir)) for f in files}
    self.file_of = {s.module: f for f, s in self.sources.items()}
    self.tops = {m.split('.')[0] for m in self.file_of}
    self.packages = {os.path.dirname(f) for f in files} | {''}
    self.packages |= {pkg for pkg, _ in self.hubs.lock_files.values()}
    self.label = {f: self._label(f) for f in files}
    self.exports = {pkg: set() for pkg in self.packages}
    self.filegroups: set[str] = set()

  def _label(self, path: str) -> str:
    pkg, name = os.path.split(path)
    return f'//{pkg}:{os.path.basename(pkg) if name == "__init__.py" else name[:-3]}'

  def resolve(self, candidates: list[str], where: str) -> str | None:
    top = candidates[-1].split('.')[0]
    if top == '__future__' or top in sys.stdlib_module_names:
      return None
    if top in self.tops:
      for c in candidates:
        if c in self.file_of:
          return self.label[self.file_of[c]]
      self.problems.append(f'{where}: imports {candidates[0]}, which is no module of this repo')
      return None
    lab = self.hubs.label(candidates[-1])
    if lab is None:
      self.problems.append(f'{where}: imports {candidates[-1]}, pinned in no lock file')
    return lab

  def static_deps(self, f: str) -> set[str]:
    src, deps = self.sources[f], set()
    deps |= {self.resolve(c, f) for c in src.imports}
    parent = src.module.rpartition('.')[0]
    if parent in self.file_of:
      deps.add(self.label[self.file_of[parent]])
    if f.startswith('tests/') and (self.is_test(f) or f.endswith('/conftest.py')):
      d = os.path.dirname(f)
      while d:
        conftest = f'{d}/conftest.py'
        deps.add(self.label.get(conftest) if conftest in self.sources else None)
        d = os.path.dirname(d)
      if self.is_test(f):
        deps.add(PYTEST_MAIN)
    return deps - {None, self.label[f]}

  def is_test(self, f: str) -> bool:
    return f.startswith('tests/') and os.path.basename(f).startswith('test_')

  def deps(self) -> dict[str, set[str]]:
    """Deps per file: the static ones, then run / named modules that make no cycle."""
    by_label = {lab: f for f, lab in self.label.items()}
    deps = {f: self.static_deps(f) for f in sorted(self.sources)}

    def reaches(start: str, goal: str) -> bool:
      seen, todo = set(), [start]
      while todo:
        lab = todo.pop()
        if lab == goal:
          return True
        if lab in by_label and lab not in seen:
          seen.add(lab)
          todo += deps[by_label[lab]]
      return False

    for f, src in sorted(self.sources.items()):
      for m in sorted(src.runs | (src.names & set(self.file_of))):
        if m.split('.')[0] in self.tops and m in self.file_of:
          lab = self.label[self.file_of[m]]
          if lab != self.label[f] and not reaches(lab, self.label[f]):
            deps[f].add(lab)
        elif m in src.runs and m.split('.')[0] not in self.tops:
          deps[f].add(self.hubs.label(m))
      deps[f].discard(None)
    return deps

  def transitive(self, f: str, deps: dict[str, set[str]]) -> set[str]:
    by_label = {lab: f for f, lab in self.label.items()}
    seen, todo = set(), list(deps[f])
    while todo:
      lab = todo.pop()
      if lab not in seen:
        seen.add(lab)
        todo += deps.get(by_label.get(lab), ())
    return seen

  def data(self, f: str) -> tuple[list[str], list[str]]:
    """(labels, glob patterns) of the files and data folders that f names."""
    own, labels, globs, src = os.path.dirname(f), set(), set(), self.sources[f]
    for p in sorted(src.paths | src.joined):
      found = self.find(own, p)
      if found is None or found == f or f.startswith(found + '/') or found.endswith('BUILD'):
        continue
      pkg = max((k for k in self.packages if k == '' or (found + '/').startswith(k + '/')), key=len)
      rel = found[len(pkg) + 1 :] if pkg else found
      if os.path.isdir(os.path.join(self.root, found)):
        if p not in src.joined or os.path.exists(os.path.join(self.root, found, '__init__.py')):
          continue  # a plain string names files; a Python package is code, not data
        if pkg == own and rel:
          globs.add(f'{rel}/**')
        else:
          self.filegroups.add((pkg, rel))
          labels.add(f'//{pkg}:{self.filegroup_name(pkg, rel)}')
      else:
        labels.add(f'//{pkg}:{rel}')
        if pkg != own:
          self.exports[pkg].add(rel)
    return sorted(labels), sorted(globs)

  def find(self, d: str, p: str) -> str | None:
    """The repo path of p, looked up from folder d upwards."""
    if p.startswith('/') or '..' in p.split('/') or p.strip('./') == '':
      return None
    while True:
      found = os.path.normpath(os.path.join(d, p))
      if not any(c in SKIP_DIRS or c.startswith('.') for c in found.split('/')):
        if os.path.exists(os.path.join(self.root, found)):
          return found
      if not d:
        return None
      d = os.path.dirname(d)

  def filegroup_name(self, pkg: str, rel: str) -> str:
    name = os.path.basename(rel or pkg)
    return f'{name}_files' if any(lab == f'//{pkg}:{name}' for lab in self.label.values()) else name

  def rules(self) -> dict[str, list[Rule]]:
    """Bazel package -> its rules, in a stable order."""
    deps, out = self.deps(), {pkg: [] for pkg in self.packages}
    for f, src in sorted(self.sources.items()):
      pkg, base = os.path.split(f)
      test = self.is_test(f)
      attrs = {
        'name': self.label[f].split(':')[1],
        'size': self.size(f, deps) if test else None,
        'testonly': f.startswith('tests/') and not test,
        'srcs': [f'//{pkg}:{base}'] + ([PYTEST_MAIN + '.py'] if test else []),
        'args': [f'$(rootpath {base})'] if test else [],
        'data': self.data(f),
        'main': PYTEST_MAIN + '.py' if test else None,
        'tags': sorted(set(src.tags) | ({'slow'} if test and src.slow else set())),
        'deps': sorted(deps[f]),
      }
      if test:
        self.exports['tests'].add('pytest_main.py')
      kind = 'py_test' if test else 'mapped_py_library' if pkg in self.mapped else 'py_library'
      out[pkg].append(Rule(kind, attrs['name'], attrs))
    with open(os.path.join(self.root, 'Makefile')) as mk:
      binaries = {m: f'{m.rpartition(".")[2]}_bin' for m in re.findall(r'-m ([\w.]+)', mk.read())}
    binaries.update({v.split(':')[0]: k for k, v in self.scripts.items()})
    for module, name in sorted(binaries.items()):
      if module in self.file_of:
        f = self.file_of[module]
        main = [
          self.label[self.file_of[m]] for m in (module, f'{module}.__main__') if m in self.file_of
        ]
        out[os.path.dirname(f)].append(
          Rule('py_binary', name, {'name': name, 'main_module': module, 'deps': main})
        )
    for pkg, rel in sorted(self.filegroups):
      name = self.filegroup_name(pkg, rel)
      srcs = f'glob(["{rel}/**"])' if rel else 'glob(["**"], exclude = ["BUILD"])'
      out[pkg].append(Rule('filegroup', name, {'name': name, 'srcs': srcs}))
    for name in sorted(self.hubs.wrapped):
      out[''].append(Rule('py_library', name, {'name': name, 'deps': self.hubs.wrapper_deps(name)}))
    for pkg, name in self.hubs.lock_files.values():
      self.exports[pkg].add(name)
    return out

  def size(self, f: str, deps: dict[str, set[str]]) -> str:
    if self.sources[f].slow:
      return 'enormous'
    imports = {c[-1].split('.')[0] for c in self.sources[f].imports}
    if imports & {'subprocess', 'multiprocessing'} or '//tests:devices' in deps[f]:
      return 'large'
    return 'medium' if f'@{CORE_HUB}//jax' in self.transitive(f, deps) else 'small'
