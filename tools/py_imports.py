"""What one Python file needs, read from its AST (for `tools/check_build.py`).

`analyse` lists a file's imports (and which are optional: probed under `try:
... except ImportError`), the project modules it runs (`python -c` scripts, `-m`
and `runpy` arguments, module names in strings) and the path parts it joins.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import textwrap


def constant(node: ast.AST) -> object:
  """The value of a literal node; None for anything else."""
  return node.value if isinstance(node, ast.Constant) else None


@dataclasses.dataclass
class FileUses:
  """What one Python file needs, from its AST."""

  imports: list[tuple[list[str], bool]]  # (candidate module names, optional)
  runtime: set[str]
  joined: set[str]  # string constants passed to os.path.join
  strings: set[str]
  composed: set[str]  # f'pkg.{name}' with name one of the file's string constants
  slow: bool


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
        if constant(a) == '-m' and isinstance(constant(b), str):
          uses.runtime.add(constant(b))
    elif isinstance(node, ast.Call):
      func = ast.unparse(node.func)
      if func.endswith('run_module') and node.args and isinstance(constant(node.args[0]), str):
        uses.runtime.add(constant(node.args[0]))
      if func.endswith('path.join'):
        uses.joined |= {c for c in map(constant, node.args) if isinstance(c, str)}
    elif isinstance(node, ast.JoinedStr) and node.values:
      head = constant(node.values[0])
      if isinstance(head, str) and head.endswith('.'):
        prefixes.append(head)
    if isinstance(node, ast.Attribute) and node.attr == 'slow':
      if isinstance(node.value, ast.Attribute) and node.value.attr == 'mark':
        uses.slow = True
  # e.g. runpy.run_module(f'tests.fixtures.{script}') over a tuple of script names.
  uses.composed = {p + s for p in prefixes for s in uses.strings if re.fullmatch(r'\w+', s)}
  return uses
