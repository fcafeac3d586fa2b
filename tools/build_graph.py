"""The BUILD files and sources of a repository as `tools/check_build.py` reads them.

`BuildGraph` evaluates every BUILD file (the Starlark subset they use: calls,
lists, `glob`, variables, `load` of `requirement`), names each `.py` file as
pyproject.toml's package-dir installs it, and answers the questions the checks
ask: a target's own sources, its transitive deps and data, the target or
requirement that provides an import.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator

from tools.py_imports import constant

CORE_HUB = 'pip'
BUILD_NAMES = ('BUILD', 'BUILD.bazel')
PY_RULES = ('py_library', 'py_test', 'py_binary', 'mapped_py_library')
PYTEST_MAIN = '//tests:pytest_main.py'
PYTEST_MAIN_LIB = '//tests:pytest_main'
# Tag of targets whose os.path.join'ed paths are outputs or the source tree, not data.
NO_DATA_TAG = 'check_build:no_data'
SKIP_DIRS = {'.git', '.venv', '__pycache__', 'build', 'runs', 'node_modules'}
# Import names that differ from the PyPI distribution name (after normalisation).
IMPORT_TO_DIST = {
  'absl': 'absl-py',
  'attr': 'attrs',
  'google.protobuf': 'protobuf',
  'orbax': 'orbax-checkpoint',
  'PIL': 'pillow',
  'sklearn': 'scikit-learn',
  'tree': 'dm-tree',
  'yaml': 'PyYAML',
}
# Requires-Dist names that the locks provide under another distribution name.
DIST_ALIASES = {'seqio-nightly': 'seqio', 'tfds-nightly': 'tensorflow-datasets'}


def normalize(name: str) -> str:
  """The distribution name as rules_python spells its repositories."""
  return re.sub(r'[-_.]+', '_', name).lower()


@dataclasses.dataclass
class Target:
  """One rule call in a BUILD file, with its attributes evaluated."""

  kind: str
  package: str
  name: str
  attrs: dict
  where: str

  @property
  def label(self) -> str:
    return f'//{self.package}:{self.name}'

  def labels(self, attr: str) -> list[str]:
    value = self.attrs.get(attr) or []
    return [canonical(v, self.package) for v in ([value] if isinstance(value, str) else value)]


def canonical(label: str, package: str) -> str:
  """`x.py`, `:x`, `//p`, `//p:x` -> `//p:x`; external labels unchanged."""
  if label.startswith('@'):
    return label
  if label.startswith('//'):
    pkg, _, name = label[2:].partition(':')
    return f'//{pkg}:{name or pkg.rsplit("/", 1)[-1]}'
  return f'//{package}:{label.lstrip(":")}'


def split_label(label: str) -> tuple[str, str]:
  pkg, _, name = label[2:].partition(':')
  return pkg, name


def label_path(label: str) -> str:
  pkg, name = split_label(label)
  return f'{pkg}/{name}' if pkg else name


def req_label(hub: str, dist: str) -> str:
  return f'@{hub}//{normalize(dist)}:pkg'


def show(label: str) -> str:
  """A label as one would write it in a BUILD file."""
  m = re.fullmatch(r'@(\w+)//(\w+):pkg', label)
  if m:
    hub = m.group(1)
    fn = 'requirement' if hub == CORE_HUB else f'{hub.removeprefix("pip_")}_requirement'
    return f'{fn}("{m.group(2)}")'
  return label


class Evaluator:
  """Evaluates the literal Starlark used in BUILD files with Python's ast."""

  def __init__(self, root: str, package: str, subpackages: set[str]) -> None:
    self.root, self.package, self.subpackages = root, package, subpackages
    self.functions: dict[str, str] = {}  # local name -> hub, for requirement()
    self.variables: dict[str, object] = {}

  def eval(self, node: ast.AST) -> object:
    if isinstance(node, ast.Constant):
      return node.value
    if isinstance(node, ast.List | ast.Tuple):
      return [self.eval(e) for e in node.elts]
    if isinstance(node, ast.Dict):
      return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
      return self.eval(node.left) + self.eval(node.right)
    if isinstance(node, ast.Name) and node.id in self.variables:
      return self.variables[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
      args = [self.eval(a) for a in node.args]
      kwargs = {k.arg: self.eval(k.value) for k in node.keywords}
      if node.func.id in self.functions:
        return req_label(self.functions[node.func.id], args[0])
      if node.func.id == 'glob':
        return self.glob(args[0], kwargs.get('exclude', []))
    raise ValueError(f'line {node.lineno}: cannot evaluate {ast.unparse(node)}')

  def glob(self, include: list[str], exclude: list[str]) -> list[str]:
    base = os.path.join(self.root, self.package)
    inc = [_glob_re(p) for p in include]
    exc = [_glob_re(p) for p in exclude]
    out = []
    for path in walk_files(base, self.subpackages, self.package):
      rel = os.path.relpath(path, base).replace(os.sep, '/')
      if any(r.fullmatch(rel) for r in inc) and not any(r.fullmatch(rel) for r in exc):
        out.append(rel)
    return sorted(out)


def _glob_re(pattern: str) -> re.Pattern:
  out = ''
  for part in re.split(r'(\*\*/|\*)', pattern):
    out += {'**/': '(?:.*/)?', '*': '[^/]*'}.get(part, re.escape(part))
  return re.compile(out)


def walk_files(base: str, stop: Iterable[str] = (), package: str = '') -> Iterator[str]:
  """Files under base, not descending into skipped folders or other Bazel packages."""
  stop = set(stop)
  for dirpath, dirnames, filenames in os.walk(base):
    rel = os.path.relpath(dirpath, base)
    keep = []
    for d in sorted(dirnames):
      sub = os.path.normpath(os.path.join(package, rel, d)).replace(os.sep, '/')
      if d in SKIP_DIRS or d.startswith(('.', 'bazel-')) or d.endswith('.egg-info'):
        continue
      if sub not in stop:
        keep.append(d)
    dirnames[:] = keep
    for f in sorted(filenames):
      yield os.path.join(dirpath, f)


def read_lock(path: str) -> set[str]:
  names = set()
  with open(path) as f:
    for line in f:
      line = line.split('#', 1)[0].strip()
      if line and not line.startswith('-'):
        names.add(normalize(re.match(r'[A-Za-z0-9._-]+', line).group(0)))
  return names


def read_text(path: str) -> str:
  with open(path) as f:
    return f.read()


class BuildGraph:
  """The sources and BUILD files under root, loaded; problems met while loading."""

  def __init__(self, root: str) -> None:
    self.root = os.path.abspath(root)
    self.problems: list[str] = []
    with open(os.path.join(self.root, 'pyproject.toml'), 'rb') as f:
      setuptools = tomllib.load(f)['tool']['setuptools']
    self.package_dir = {k: v.strip('/') for k, v in setuptools.get('package-dir', {}).items()}
    self.build_dirs = set()
    for path in walk_files(self.root):
      if os.path.basename(path) in BUILD_NAMES:
        self.build_dirs.add(os.path.relpath(os.path.dirname(path), self.root).replace('\\', '/'))
    self.build_dirs = {'' if d == '.' else d for d in self.build_dirs}
    self.files = sorted(
      os.path.relpath(p, self.root).replace(os.sep, '/')
      for p in walk_files(self.root)
      if p.endswith('.py')
    )
    self.module_of = {f: self.module_name(f) for f in self.files}
    self.file_of = {m: f for f, m in self.module_of.items()}
    self.project_tops = {m.split('.')[0] for m in self.file_of}
    self.hubs: dict[str, str] = {}  # hub name -> lock file (repo-relative)
    self.load_workspace()
    self.locks = {hub: read_lock(os.path.join(self.root, p)) for hub, p in self.hubs.items()}
    self.targets: dict[str, Target] = {}
    self.exports: dict[str, set[str]] = {}
    self.load_builds()

  def problem(self, where: str, text: str) -> None:
    self.problems.append(f'{where}: {text}')

  def module_name(self, path: str) -> str:
    """The import name of a repo file, following pyproject.toml's package-dir."""
    stem = path[: -len('.py')]
    best = ('', '')
    for pkg, folder in self.package_dir.items():
      if (stem + '/').startswith(folder + '/') and len(folder) > len(best[1]):
        best = (pkg, folder)
    if best[1]:
      stem = best[0].replace('.', '/') + stem[len(best[1]) :]
    parts = stem.split('/')
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)

  # -- loading ------------------------------------------------------------------------

  def load_workspace(self) -> None:
    for name in ('WORKSPACE', 'WORKSPACE.bazel'):
      path = os.path.join(self.root, name)
      if os.path.exists(path):
        break
    else:
      self.problem('WORKSPACE', 'missing')
      return
    ev = Evaluator(self.root, '', set())
    for node in ast.walk(ast.parse(read_text(path), path)):
      if isinstance(node, ast.Call) and ast.unparse(node.func) == 'pip_parse':
        kw = {k.arg: ev.eval(k.value) for k in node.keywords}
        self.hubs[kw['name']] = label_path(canonical(kw['requirements_lock'], ''))
    if CORE_HUB not in self.hubs:
      self.problem(name, f'no pip_parse(name = "{CORE_HUB}")')

  def load_builds(self) -> None:
    for package in sorted(self.build_dirs):
      for name in BUILD_NAMES:
        path = os.path.join(self.root, package, name)
        if os.path.exists(path):
          self.load_build(package, path)

  def load_build(self, package: str, path: str) -> None:
    rel = os.path.relpath(path, self.root)
    subpackages = {d for d in self.build_dirs if d != package}
    ev = Evaluator(self.root, package, subpackages)
    tree = ast.parse(read_text(path), rel)
    for stmt in tree.body:
      try:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
          ev.variables[stmt.targets[0].id] = ev.eval(stmt.value)
          continue
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
          continue
        call = stmt.value
        kind = ast.unparse(call.func)
        if kind == 'load':
          repo = constant(call.args[0]) or ''
          hub = re.match(r'@(\w+)//:requirements\.bzl$', repo)
          for k in call.keywords:
            if hub and constant(k.value) == 'requirement':
              ev.functions[k.arg] = hub.group(1)
          for a in call.args[1:]:
            if hub and constant(a) == 'requirement':
              ev.functions['requirement'] = hub.group(1)
          continue
        args = [ev.eval(a) for a in call.args]
        attrs = {k.arg: ev.eval(k.value) for k in call.keywords}
      except ValueError as e:
        self.problem(rel, str(e))
        continue
      if kind == 'exports_files':
        self.exports.setdefault(package, set()).update(args[0])
      elif 'name' in attrs:
        t = Target(kind, package, attrs['name'], attrs, f'{rel}:{stmt.lineno}')
        if t.label in self.targets:
          self.problem(t.where, f'duplicate target {t.label}')
        self.targets[t.label] = t
        if kind == 'mapped_py_library':  # the macro's hidden runfiles target
          self.targets[t.label + '_in_package'] = Target(
            'package_dir', package, t.name + '_in_package', {}, t.where
          )

  # -- helpers ---------------------------------------------------------------------

  def py_targets(self) -> list[Target]:
    return [t for t in self.targets.values() if t.kind in PY_RULES]

  def own_sources(self, t: Target) -> list[str]:
    """Files of t's package in its srcs, less its main."""
    main = canonical(t.attrs['main'], t.package) if t.attrs.get('main') else None
    out = []
    for label in t.labels('srcs'):
      if label != main and split_label(label)[0] == t.package:
        out.append(label_path(label))
    return out

  def data_files(self, label: str, seen: set[str] | None = None) -> set[str]:
    """Files a data label contributes (filegroups and py targets expanded)."""
    seen = set() if seen is None else seen
    if label in seen or label.startswith('@'):
      return set()
    seen.add(label)
    t = self.targets.get(label)
    if t is None:
      return {label_path(label)}
    out = set()
    for attr in ('srcs', 'data'):
      for lab in t.labels(attr):
        out |= self.data_files(lab, seen)
    return out

  def transitive(self, t: Target) -> tuple[set[str], set[str]]:
    """(labels of all project deps, data files) of t, transitively."""
    deps, data, todo = set(), set(), [t.label]
    while todo:
      cur = self.targets.get(todo.pop())
      if cur is None:
        continue
      for lab in cur.labels('data'):
        data |= self.data_files(lab)
      for lab in cur.labels('deps'):
        if lab not in deps and not lab.startswith('@'):
          deps.add(lab)
          todo.append(lab)
    return deps, data

  def resolve(self, candidates: list[str]) -> tuple[str, str] | None:
    """('module', name) of this repo, ('dist', PyPI name) or ('unknown', name); None: stdlib."""
    top = candidates[-1].split('.')[0]
    if top == '__future__' or top in sys.stdlib_module_names:
      return None
    if top in self.project_tops:
      for c in candidates:
        if c in self.file_of:
          return 'module', c
      return 'unknown', candidates[0]
    name = candidates[-1]
    dist = IMPORT_TO_DIST.get('.'.join(name.split('.')[:2])) or IMPORT_TO_DIST.get(top) or top
    return 'dist', dist

  def dist_label(self, dist: str) -> str | None:
    norm = normalize(dist)
    if norm in self.locks.get(CORE_HUB, set()):
      return req_label(CORE_HUB, dist)
    return self.wrappers.get(norm)

  @functools.cached_property
  def wrappers(self) -> dict[str, str]:
    """Normalised dist -> //:<target> for root targets wrapping another hub's package."""
    out = {}
    for t in self.py_targets():
      if t.package == '':
        for lab in t.labels('deps'):
          m = re.fullmatch(r'@(\w+)//(\w+):pkg', lab)
          if m and m.group(1) != CORE_HUB:
            out[m.group(2)] = t.label
    return out
