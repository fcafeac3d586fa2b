"""Checks the Bazel BUILD files against what the Python sources really import.

    python -m tools.check_build [REPO_ROOT]     # prints problems, exit status 1 if any

Every `.py` file of the project must be in exactly one py_library / py_test /
py_binary (a py_test's `main` does not count), and each target must declare, as
direct deps, exactly what its files need:

* intra-project imports -> the target owning that module (modules are named as
  pyproject.toml's package-dir installs them: `layers/vit.py` is `pali_pax.layers.vit`),
  plus the module's own package `__init__` target and, for tests, the `conftest.py`
  targets of its folder and the folders above it;
* third-party imports -> `requirement("dist")` of the core hub, or the `//:<dist>`
  wrapper target for the praxis / paxml (`--no-deps`) and bench hubs;
* imports inside embedded scripts (string constants run with `python -c`), `-m module`
  / `runpy.run_module` arguments and string constants naming a project module are
  runtime dependencies (skipped where they would make a dependency cycle);
* an import of a module the file also probes with `try: ... except ImportError` is
  optional: it may be declared or not.

It also checks that files joined onto a path (`os.path.join(..., 'fixtures')`) are in
the target's (transitive) data (unless it is tagged `check_build:no_data`: paths it
writes, or the source tree it reads), that slow tests (`pytest.mark.slow`) are tagged
`slow`, that every used `requirement()` is pinned in its lock file, that the
mapped folders match pyproject.toml, and that each `//:<dist>` wrapper lists the
core-hub dependencies of its hub's packages (read from the installed metadata).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import sys

try:
  from packaging.markers import Marker
except ImportError:  # only for evaluating Requires-Dist markers
  Marker = None

from tools.build_graph import (
  CORE_HUB,
  DIST_ALIASES,
  NO_DATA_TAG,
  PYTEST_MAIN,
  PYTEST_MAIN_LIB,
  BuildGraph,
  Evaluator,
  Target,
  canonical,
  label_path,
  normalize,
  read_text,
  req_label,
  show,
  split_label,
)
from tools.py_imports import analyse


class Checker(BuildGraph):
  """The checks of the module docstring over a loaded BuildGraph."""

  # -- checks ------------------------------------------------------------------------

  def run(self) -> list[str]:
    self.check_mapping()
    self.check_ownership()
    self.check_labels()
    self.check_cycles()
    for t in self.py_targets():
      if t.label in self.wrappers.values():
        self.check_wrapper(t)
      else:
        self.check_deps(t)
      if t.kind == 'py_test':
        self.check_test(t)
    return self.problems

  def check_mapping(self) -> None:
    path = os.path.join(self.root, 'tools', 'package_dir.bzl')
    dirs = {}
    for node in ast.parse(read_text(path)).body:
      if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == 'PACKAGE_DIRS':
        dirs = Evaluator(self.root, '', set()).eval(node.value)
    want = {d: p.replace('.', '/') for p, d in self.package_dir.items() if p.replace('.', '/') != d}
    if dirs != want:
      self.problem(
        'tools/package_dir.bzl', f'PACKAGE_DIRS {dirs} != pyproject.toml package-dir {want}'
      )
    for t in self.py_targets():
      mapped = t.package in want
      if mapped != (t.kind == 'mapped_py_library') and t.kind != 'py_binary':
        use = 'mapped_py_library' if mapped else 'py_library / py_test'
        self.problem(t.where, f'{t.label}: use {use} in {t.package or "the root"}/')

  def check_ownership(self) -> None:
    owners: dict[str, list[str]] = {f: [] for f in self.files}
    for t in self.py_targets():
      for f in self.own_sources(t):
        if f not in owners:
          self.problem(t.where, f'{t.label}: {f} is not a source file here')
          continue
        owners[f].append(t.label)
    for f, labels in owners.items():
      if len(labels) != 1:
        pkg = os.path.dirname(f)
        where = f'{pkg}/BUILD' if pkg in self.build_dirs else f'{f} (no BUILD in {pkg or "."})'
        self.problem(where, f'{f} is in {len(labels)} targets {labels or ""}'.rstrip())
    self.owner = {f: labels[0] for f, labels in owners.items() if len(labels) == 1}

  def check_labels(self) -> None:
    for t in list(self.targets.values()):
      for attr in ('srcs', 'deps', 'data'):
        for lab in t.labels(attr):
          if lab.startswith('@'):
            m = re.fullmatch(r'@(\w+)//(\w+):pkg', lab)
            if m and m.group(2) not in self.locks.get(m.group(1), set()):
              self.problem(
                t.where, f'{t.label}: {show(lab)} is not pinned in {self.hubs.get(m.group(1))}'
              )
            continue
          pkg, name = split_label(lab)
          if pkg not in self.build_dirs:
            self.problem(t.where, f'{t.label}: {lab}: no BUILD in {pkg}/')
          elif lab in self.targets:
            continue
          elif not os.path.exists(os.path.join(self.root, label_path(lab))):
            self.problem(t.where, f'{t.label}: {lab} does not exist')
          elif pkg != t.package and name not in self.exports.get(pkg, set()):
            self.problem(t.where, f'{t.label}: {lab} is not in exports_files of //{pkg}')

  def check_cycles(self) -> None:
    """Bazel rejects dependency cycles: modules that import each other share a target."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(label: str, stack: list[str]) -> None:
      state[label] = 1
      for dep in self.targets[label].labels('deps'):
        if dep not in self.targets:
          continue
        if state.get(dep) == 1:
          cycle = stack[stack.index(dep) :] + [dep]
          self.problem(self.targets[dep].where, f'dependency cycle {" -> ".join(cycle)}')
        elif dep not in state:
          visit(dep, stack + [dep])
      state[label] = 2

    for label in sorted(self.targets):
      if label not in state:
        visit(label, [label])

  def required(self, t: Target) -> tuple[dict[str, str], set[str], set[str]]:
    """({label: why} needed, optional labels, data paths needed) for t's files."""
    need: dict[str, str] = {}
    optional: set[str] = set()
    paths: set[str] = set()
    files = self.own_sources(t)
    if t.attrs.get('main_module'):  # py_binary(main_module = ...) runs a dep's module
      owner = self.owner.get(self.file_of.get(t.attrs['main_module'], ''))
      if owner is None:
        self.problem(t.where, f'{t.label}: main_module {t.attrs["main_module"]} is no module')
      else:
        need[owner] = f'main_module {t.attrs["main_module"]}'
    data_py = [label_path(lab) for lab in t.labels('data') if lab.endswith('.py')]
    for f in files + data_py:
      if f not in self.module_of:
        continue
      module = self.module_of[f]
      package = module if f.endswith('__init__.py') else module.rpartition('.')[0]
      uses = analyse(f, read_text(os.path.join(self.root, f)), package)
      for candidates, opt in uses.imports:
        res = self.resolve(candidates)
        if res is None:
          continue
        kind, value = res
        if kind == 'unknown':
          self.problem(t.where, f'{f}: imports {value}, which is no module of this repo')
          continue
        lab = self.owner.get(self.file_of[value]) if kind == 'module' else self.dist_label(value)
        if lab == t.label:
          continue
        if lab is None:
          self.problem(t.where, f'{f}: imports {candidates[-1]} (dist {value}): pinned in no lock')
        elif opt:
          optional.add(lab)
        else:
          need.setdefault(lab, f'{f} imports {candidates[0] if kind == "module" else value}')
      named = {s for s in (uses.strings | uses.composed) & set(self.file_of) if '.' in s}
      for ref in sorted(uses.runtime | named):
        res = self.resolve([ref])
        if not res or res[0] == 'unknown':
          continue
        if res[0] == 'dist':
          lab = self.dist_label(res[1])
        else:
          lab = self.owner.get(self.file_of[res[1]])
          if lab in self.targets and t.label in self.transitive(self.targets[lab])[0]:
            lab = None  # it imports this target: a dep would be a cycle
        if lab and lab != t.label:
          need.setdefault(lab, f'{f} runs {ref}')
      # The enclosing package's __init__, and for tests the conftest.py files above them.
      parent = package.rpartition('.')[0] if f.endswith('__init__.py') else package
      owner = self.owner.get(self.file_of.get(parent, ''))
      if owner not in (None, t.label):
        need.setdefault(owner, f'{f} is in package {parent}')
      if t.kind == 'py_test' or f.endswith('/conftest.py'):  # pytest loads these
        d = os.path.dirname(f)
        while d:
          conftest = f'{d}/conftest.py'
          if conftest in self.owner and conftest != f and self.owner[conftest] != t.label:
            need.setdefault(self.owner[conftest], f'{f} is collected with {conftest}')
          d = os.path.dirname(d)
      for s in uses.joined:
        d = os.path.dirname(f)
        while d and s and '/' not in s:
          candidate = f'{d}/{s}'
          if os.path.exists(os.path.join(self.root, candidate)) and not s.endswith('.py'):
            paths.add(candidate)
            break
          d = os.path.dirname(d) if '/' in d else ''
    return need, optional, paths

  def check_deps(self, t: Target) -> None:
    need, optional, paths = self.required(t)
    if t.kind == 'py_test':
      need.setdefault(PYTEST_MAIN_LIB, 'py_test runs through tests/pytest_main.py')
    declared = t.labels('deps')
    for lab, why in sorted(need.items()):
      if lab not in declared:
        self.problem(t.where, f'{t.label}: missing dep {show(lab)} ({why})')
    for lab in declared:
      if lab not in need and lab not in optional:
        self.problem(t.where, f'{t.label}: dep {show(lab)} is not used by its files')
    if len(set(declared)) != len(declared):
      self.problem(t.where, f'{t.label}: repeated deps')
    _, data = self.transitive(t)
    if NO_DATA_TAG in (t.attrs.get('tags') or []):
      paths = set()
    for p in sorted(paths):
      if not any(d == p or d.startswith(p + '/') for d in data):
        self.problem(t.where, f'{t.label}: {p} is read but not in data (transitively)')

  def check_test(self, t: Target) -> None:
    srcs = self.own_sources(t)
    if len(srcs) != 1:
      self.problem(t.where, f'{t.label}: a py_test runs exactly one test file')
      return
    if canonical(t.attrs.get('main', ''), t.package) != PYTEST_MAIN:
      self.problem(t.where, f'{t.label}: main must be "{PYTEST_MAIN}"')
    if PYTEST_MAIN not in t.labels('srcs'):
      self.problem(t.where, f'{t.label}: srcs must include "{PYTEST_MAIN}"')
    if t.attrs.get('args') != [f'$(rootpath {os.path.basename(srcs[0])})']:
      self.problem(t.where, f'{t.label}: args must be ["$(rootpath {os.path.basename(srcs[0])})"]')
    if 'size' not in t.attrs:
      self.problem(t.where, f'{t.label}: no size')
    slow = analyse(srcs[0], read_text(os.path.join(self.root, srcs[0]))).slow
    if slow != ('slow' in (t.attrs.get('tags') or [])):
      self.problem(t.where, f'{t.label}: tags must {"" if slow else "not "}include "slow"')

  def check_wrapper(self, t: Target) -> None:
    """//:<dist> = that hub's package + the core-hub deps of its closure in the hub.

    Skipped where a package of the closure is not installed in this interpreter.
    """
    own = [lab for lab in t.labels('deps') if not lab.startswith(f'@{CORE_HUB}//')]
    m = re.fullmatch(r'@(\w+)//(\w+):pkg', own[0]) if len(own) == 1 else None
    if not m:
      self.problem(t.where, f'{t.label}: a wrapper has exactly one other-hub dep')
      return
    hub, dist = m.groups()
    core = self.locks[CORE_HUB]
    closure, todo, want = set(), [dist], set()
    while todo:
      d = todo.pop()
      if d in closure:
        continue
      closure.add(d)
      reqs = requires_dist(d)
      if reqs is None:
        return  # not installed here: nothing to compare with
      for r in reqs:
        r = normalize(DIST_ALIASES.get(r, r))
        if r in self.locks[hub]:
          todo.append(r)
        elif r in core:
          want.add(req_label(CORE_HUB, r))
    have = {lab for lab in t.labels('deps') if lab.startswith(f'@{CORE_HUB}//')}
    for lab in sorted(want - have):
      self.problem(
        t.where, f'{t.label}: missing dep {show(lab)} (Requires-Dist in {sorted(closure)})'
      )
    for lab in sorted(have - want):
      self.problem(t.where, f'{t.label}: dep {show(lab)} is required by none of {sorted(closure)}')


def requires_dist(dist: str) -> list[str] | None:
  """Requires-Dist names of an installed distribution that apply here (no extras)."""
  try:
    reqs = importlib.metadata.requires(dist) or []
  except importlib.metadata.PackageNotFoundError:
    return None
  out = []
  for r in reqs:
    spec, _, marker = r.partition(';')
    marker = marker.strip()
    if marker:
      if Marker is not None:
        if not Marker(marker).evaluate({'extra': ''}):
          continue
      elif 'extra' in marker:
        continue
    out.append(re.match(r'[A-Za-z0-9._-]+', spec.strip()).group(0))
  return out


def check(root: str) -> list[str]:
  """All problems found under root (empty when the BUILD files are accurate)."""
  return Checker(root).run()


def main(argv: list[str]) -> int:
  """Prints the problems; exit status 1 when there are any."""
  root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  problems = check(root)
  for p in problems:
    print(p)
  print(f'{len(problems)} problem(s)' if problems else 'BUILD files match the sources')
  return 1 if problems else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
