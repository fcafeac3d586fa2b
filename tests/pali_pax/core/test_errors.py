"""pali_pax.core.errors: its docstring lists every PaliPaxError subclass the packages define."""

import importlib
import pkgutil

from pali_pax.core import errors

# Folders mapped into the pali_pax namespace (pyproject package-dir), walked one by one.
_PACKAGES = ('pali_pax', 'pali_pax.layers', 'pali_pax.tasks', 'pali_pax.fiddle_configs')


def _all_subclasses(cls: type) -> set[type]:
  out = set()
  for sub in cls.__subclasses__():
    out |= {sub, *_all_subclasses(sub)}
  return out


def _import_everything() -> None:
  for name in _PACKAGES:
    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(package.__path__, f'{name}.'):
      if not info.name.endswith('__main__'):  # running a command is not defining it
        importlib.import_module(info.name)


def test_docstring_names_every_subclass_and_each_keeps_its_builtin_type():
  _import_everything()
  classes = _all_subclasses(errors.PaliPaxError)
  names = {c.__name__ for c in classes}
  # The kinds the packages raise today; a refactor that drops one must say so here.
  assert {
    'ConfigError',
    'InputValidationError',
    'CorruptCheckpointError',
    'DataFormatError',
  } <= names
  missing = sorted(n for n in names if n not in errors.__doc__)
  assert not missing, f'pali_pax/core/errors.py does not list {missing}'
  for cls in classes:
    assert issubclass(cls, ValueError | FileNotFoundError), cls
