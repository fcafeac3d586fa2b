"""What each Python file of the repository is and needs, read from its AST."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import textwrap

SKIP_DIRS = {'.git', '.venv', '__pycache__', 'build', 'runs', 'node_modules'}


@dataclasses.dataclass
class Source:
  path: str  # repo-relative, with '/'
  module: str  # the import name, as pyproject.toml's package-dir installs the file
  imports: list[list[str]]  # per import: candidate module names, longest first
  runs: set[str]  # modules run: `-m x`, runpy.run_module('x')
  names: set[str]  # strings that may name project modules: 'x.y', f'x.{name}'
  paths: set[str]  # strings that may name files: 'a/b', 'x.toml'
  joined: set[str]  # files or folders: the constants that end an os.path.join call
  slow: bool  # pytest.mark.slow, or a *_slow.py file
  tags: list[str]  # from `# bazel tag: NAME` lines


def py_files(root: str) -> list[str]:
  """Repo-relative paths of the .py files, sorted, outside skipped and hidden folders."""
  out = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith('.')]
    rel = os.path.relpath(dirpath, root).replace(os.sep, '/')
    out += [os.path.normpath(f'{rel}/{f}') for f in filenames if f.endswith('.py')]
  return sorted(out)


def module_name(path: str, package_dir: dict[str, str]) -> str:
  """`layers/vit.py` -> `pali_pax.layers.vit` for package-dir {'pali_pax.layers': 'layers'}."""
  stem = path.removesuffix('.py').removesuffix('/__init__')
  for package, folder in sorted(package_dir.items(), key=lambda kv: -len(kv[1])):
    if stem == folder or stem.startswith(folder + '/'):
      stem = package.replace('.', '/') + stem[len(folder) :]
      break
  return stem.replace('/', '.')


def read(root: str, path: str, module: str) -> Source:
  with open(os.path.join(root, path)) as f:
    text = f.read()
  tree = ast.parse(text, path)
  package = module if path.endswith('__init__.py') else module.rpartition('.')[0]
  src = Source(path, module, [], set(), set(), set(), set(), path.endswith('_slow.py'), [])
  src.tags = re.findall(r'^# bazel tag: (\S+)$', text, re.M)
  _imports(tree.body, package, src.imports)
  docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
  prefixes, strings = [], set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
      s = node.value
      if id(node) in docstrings or re.search(r'\s', s.strip()) or not s.strip():
        if 'import ' in s and '\n' in s:  # a script run with `python -c`
          try:
            _imports(ast.parse(textwrap.dedent(s)).body, '', src.imports)
          except SyntaxError:
            pass
        continue
      strings.add(s)
      if re.fullmatch(r'\w+(\.\w+)+', s):
        src.names.add(s)
      if '/' in s or re.fullmatch(r'[\w.-]+\.\w+', s):
        src.paths.add(s)
    elif isinstance(node, ast.List | ast.Tuple):
      for a, b in zip(node.elts, node.elts[1:], strict=False):
        if _const(a) == '-m' and isinstance(_const(b), str):
          src.runs.add(_const(b))
    elif isinstance(node, ast.Call):
      func = ast.unparse(node.func)
      parts = [_const(a) for a in node.args]
      if func.endswith('path.join'):
        tail = []  # the constants after the last variable part
        for part in reversed(parts):
          if not isinstance(part, str):
            break
          tail.insert(0, part)
        src.joined.add('/'.join(tail))
      elif func.endswith('run_module') and parts and isinstance(parts[0], str):
        src.runs.add(parts[0])
    elif isinstance(node, ast.JoinedStr) and node.values:  # f'tests.fixtures.{name}'
      head = _const(node.values[0])
      if isinstance(head, str) and head.endswith('.'):
        prefixes.append(head)
    elif isinstance(node, ast.Attribute) and node.attr == 'slow':
      src.slow |= isinstance(node.value, ast.Attribute) and node.value.attr == 'mark'
  src.names |= {p + n for p in prefixes for n in strings if n.isidentifier()}
  return src


def _const(node: ast.AST) -> object:
  return node.value if isinstance(node, ast.Constant) else None


def _imports(nodes: list[ast.AST], package: str, out: list[list[str]]) -> None:
  """Appends the candidates of each import not probed by `try: ... except ImportError`."""
  for node in nodes:
    children = list(ast.iter_child_nodes(node))
    if isinstance(node, ast.Try):
      caught = {n.id for h in node.handlers if h.type for n in ast.walk(h.type) if hasattr(n, 'id')}
      if caught & {'ImportError', 'ModuleNotFoundError'}:  # optional: not a dependency
        children = node.handlers + node.orelse + node.finalbody
    elif isinstance(node, ast.Import):
      for a in node.names:
        parts = a.name.split('.')
        out.append(['.'.join(parts[:i]) for i in range(len(parts), 0, -1)])
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        up = package.split('.')[: len(package.split('.')) - node.level + 1]
        base = '.'.join(up + ([base] if base else []))
      out += [[f'{base}.{a.name}', base] for a in node.names]
    _imports(children, package, out)
