"""Fiddle's lambda source lookup with the standard library's parser: seconds off every start.

`pax_fiddle.instance_field(default_factory=lambda: ...)` (praxis.optimizers,
paxml.tasks_lib: six lambdas) makes Fiddle's `auto_config` read the lambda's source,
and fiddle 0.3.1 finds it by parsing the *whole module* with libcst (a pure-Python
parser) once per lambda: `cProfile` of `import pali_pax.cli.predict` put 37 of 55 s
there, `-X importtime` 15 of 31 s (praxis.optimizers 8.9 s, paxml.tasks_lib 6.5 s
"self" time) on a loaded 2-core machine.

`install()` makes fiddle's `_getsource_for_lambda` find the lambda with `ast` (C
parser, each module parsed once) and return its exact source text. Where that is not
one unambiguous lambda (none, or several, on the line), fiddle's own libcst lookup
runs, so its result and its errors are unchanged. The patch is applied when fiddle's
auto_config module is imported (a finder on `sys.meta_path`), so it costs nothing in
processes that never import fiddle and cannot come too late for praxis' lambdas.
"""

import ast
import functools
import importlib.abc
import importlib.machinery
import inspect
import linecache
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

TARGET = 'fiddle._src.experimental.auto_config'


@functools.lru_cache(maxsize=64)
def _lambdas_by_line(filename: str, source: str) -> dict[int, list[ast.Lambda]]:
  by_line: dict[int, list[ast.Lambda]] = {}
  for node in ast.walk(ast.parse(source, filename)):
    if isinstance(node, ast.Lambda):
      by_line.setdefault(node.lineno, []).append(node)
  return by_line


def lambda_source(fn: Callable[..., Any]) -> str | None:
  """The source text of lambda `fn`, or None unless exactly one lambda starts on its line."""
  filename = inspect.getsourcefile(fn)
  module = inspect.getmodule(fn)
  if filename is None:
    return None
  source = ''.join(linecache.getlines(filename, module.__dict__ if module else None))
  try:
    found = _lambdas_by_line(filename, source).get(fn.__code__.co_firstlineno, [])
  except SyntaxError:
    return None
  if len(found) != 1:
    return None
  text = ast.get_source_segment(source, found[0])
  if text is None:
    return None
  # Fiddle parses the text as a module: a lambda spanning lines needs its parentheses.
  return text if '\n' not in text else f'({text})'


def _patch(auto_config: ModuleType) -> None:
  original = auto_config._getsource_for_lambda
  if getattr(original, '_pali_pax_fast', False):
    return

  @functools.wraps(original)
  def fast(fn: Callable[..., Any]) -> str:
    text = lambda_source(fn)
    return original(fn) if text is None else text

  fast._pali_pax_fast = True  # type: ignore[attr-defined]
  auto_config._getsource_for_lambda = fast


class _PatchOnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Imports fiddle's auto_config as usual, then patches it."""

  def find_spec(
    self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
  ) -> importlib.machinery.ModuleSpec | None:
    if name != TARGET:
      return None
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None or spec.loader is None:
      return None
    self._loader = spec.loader
    spec.loader = self
    return spec

  def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
    return self._loader.create_module(spec)

  def exec_module(self, module: ModuleType) -> None:
    self._loader.exec_module(module)
    _patch(module)


def install() -> None:
  """Patches fiddle's auto_config now if imported, else when it is imported."""
  if TARGET in sys.modules:
    _patch(sys.modules[TARGET])
  elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _PatchOnImport())
