"""Checks the Bazel BUILD files against what the Python sources really import.

    python tools/check_build.py [REPO_ROOT]     # prints problems, exit status 1 if any

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
import dataclasses
import functools
import importlib.metadata
import os
import re
import sys
import textwrap
import tomllib
from collections.abc import Iterable, Iterator

try:
  from packaging.markers import Marker
except ImportError:  # only for evaluating Requires-Dist markers
  Marker = None

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


@dataclasses.dataclass
class FileUses:
  """What one Python file needs, from its AST."""

  imports: list[tuple[list[str], bool]]  # (candidate module names, optional)
  runtime: set[str]
  joined: set[str]  # string constants passed to os.path.join
  strings: set[str]
  composed: set[str]  # f'pkg.{name}' with name one of the file's string constants
  slow: bool


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


def analyse(path: str, source: str, package: str = '') -> FileUses:
  """Imports (with optional-ness), runtime module references and strings of a file.

  `package` is the file's package, for relative imports.
  """
  tree = ast.parse(source, path)
  uses = FileUses([], set(), set(), set(), set(), False)
  found: list[tuple[list[str], bool]] = []

  def catches_import_error(node: ast.Try) -> bool:
    names = set()
    for h in node.handlers:
      for n in ast.walk(h.type) if h.type else []:
        if isinstance(n, ast.Name):
          names.add(n.id)
    return bool(names & {'ImportError', 'ModuleNotFoundError'})

  def visit(node: ast.AST, optional: bool) -> None:
    if isinstance(node, ast.Try):
      inner = optional or catches_import_error(node)
      for n in node.body:
        visit(n, inner)
      for n in node.handlers + node.orelse + node.finalbody:
        visit(n, optional)
      return
    if isinstance(node, ast.Import):
      for a in node.names:
        parts = a.name.split('.')
        found.append(([('.'.join(parts[:i])) for i in range(len(parts), 0, -1)], optional))
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        parts = package.split('.')[: len(package.split('.')) - node.level + 1]
        base = '.'.join(parts + ([base] if base else []))
      for a in node.names:
        found.append(([f'{base}.{a.name}', base], optional))
    for child in ast.iter_child_nodes(node):
      visit(child, optional)

  visit(tree, False)
  probed = {c[-1] for c, optional in found if optional}
  uses.imports = [
    (c, opt or any(c[-1] == p or c[-1].startswith(p + '.') for p in probed)) for c, opt in found
  ]

  prefixes = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
      uses.strings.add(node.value)
      if 'import ' in node.value and '\n' in node.value:
        try:
          script = ast.parse(textwrap.dedent(node.value))
        except SyntaxError:
          continue
        for sub in ast.walk(script):
          if isinstance(sub, ast.Import):
            uses.imports += [([a.name], False) for a in sub.names]
          elif isinstance(sub, ast.ImportFrom) and not sub.level:
            uses.imports += [([f'{sub.module}.{a.name}', sub.module], False) for a in sub.names]
    elif isinstance(node, ast.List | ast.Tuple):
      elts = node.elts
      for a, b in zip(elts, elts[1:], strict=False):
        if _const(a) == '-m' and isinstance(_const(b), str):
          uses.runtime.add(_const(b))
    elif isinstance(node, ast.Call):
      func = ast.unparse(node.func)
      if func.endswith('run_module') and node.args and isinstance(_const(node.args[0]), str):
        uses.runtime.add(_const(node.args[0]))
      if func.endswith('path.join'):
        uses.joined |= {c for c in map(_const, node.args) if isinstance(c, str)}
    elif isinstance(node, ast.JoinedStr) and node.values:
      head = _const(node.values[0])
      if isinstance(head, str) and head.endswith('.'):
        prefixes.append(head)
    if isinstance(node, ast.Attribute) and node.attr == 'slow':
      if isinstance(node.value, ast.Attribute) and node.value.attr == 'mark':
        uses.slow = True
  # e.g. runpy.run_module(f'tests.fixtures.{script}') over a tuple of script names.
  uses.composed = {p + s for p in prefixes for s in uses.strings if re.fullmatch(r'\w+', s)}
  return uses


def _const(node: ast.AST) -> object:
  return node.value if isinstance(node, ast.Constant) else None


def _read(path: str) -> str:
  with open(path) as f:
    return f.read()


class Checker:
  """Loads the sources and BUILD files under root and collects the problems."""

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
    for node in ast.walk(ast.parse(_read(path), path)):
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
    tree = ast.parse(_read(path), rel)
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
          repo = _const(call.args[0]) or ''
          hub = re.match(r'@(\w+)//:requirements\.bzl$', repo)
          for k in call.keywords:
            if hub and _const(k.value) == 'requirement':
              ev.functions[k.arg] = hub.group(1)
          for a in call.args[1:]:
            if hub and _const(a) == 'requirement':
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
    for node in ast.parse(_read(path)).body:
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
      uses = analyse(f, _read(os.path.join(self.root, f)), package)
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
    slow = analyse(srcs[0], _read(os.path.join(self.root, srcs[0]))).slow
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
