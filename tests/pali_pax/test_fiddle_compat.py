"""pali_pax.core.fiddle_compat: fiddle's lambda source lookup, fast and unchanged."""

import dataclasses
import sys

import pytest
from fiddle._src.experimental import auto_config
from praxis import pax_fiddle

from pali_pax.core import fiddle_compat

CLOSED = 3

ONE_LINE = lambda: [-1, 1, -1]  # noqa: E731


def _closure(k):
  return lambda: {'k': k, 'c': CLOSED}


CLOSURE = _closure(2)
SPANNING = lambda: dict(  # noqa: E731
  a=1,
  b=[2, 3],
)
TWO_ON_A_LINE = (lambda: 1, lambda: 2)


def _fiddle_own(fn):
  """fiddle 0.3.1's libcst lookup (the function the patch wraps)."""
  return auto_config._getsource_for_lambda.__wrapped__(fn)


def test_installed_at_import_of_pali_pax():
  assert fiddle_compat.TARGET in sys.modules
  assert getattr(auto_config._getsource_for_lambda, '_pali_pax_fast', False)


@pytest.mark.parametrize('fn', [ONE_LINE, CLOSURE, SPANNING], ids=['one_line', 'closure', 'spans'])
def test_same_source_as_fiddle_and_same_auto_config(fn):
  fast = fiddle_compat.lambda_source(fn)
  assert fast is not None
  # The same expression (fiddle's text may keep other whitespace inside parentheses).
  assert fast.replace(' ', '').replace('\n', '').strip('()') == (
    _fiddle_own(fn).replace(' ', '').replace('\n', '').strip('()')
  )
  assert pax_fiddle.auto_config(fn).as_buildable() is not None
  built = pax_fiddle.build(pax_fiddle.auto_config(fn).as_buildable())
  assert built == fn()


def test_ambiguous_line_falls_back_to_fiddle_and_its_error():
  assert fiddle_compat.lambda_source(TWO_ON_A_LINE[0]) is None
  with pytest.raises(ValueError, match='multiple lambdas'):
    auto_config._getsource_for_lambda(TWO_ON_A_LINE[0])


def test_praxis_lambda_default_factories_match_fiddle():
  from praxis import optimizers

  checked = 0
  for cls in vars(optimizers).values():
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
      continue
    for f in dataclasses.fields(cls):
      func = getattr(f.default_factory, 'func', None)
      if auto_config.is_auto_config(f.default_factory) and func.__name__ == '<lambda>':
        assert fiddle_compat.lambda_source(func) == _fiddle_own(func)
        assert pax_fiddle.build(f.default_factory.as_buildable()) == func()
        checked += 1
  assert checked >= 1
