"""Compatibility shim: lets praxis/paxml 1.4.0 run on jax 0.8.3.

Imported by `pali_pax/__init__.py` before anything imports praxis, so every
`pali_pax.*` module sees a patched jax. It only *adds* aliases that newer jax
removed; where an alias still exists nothing is touched:

* `jax.tree_map`, `jax.tree_flatten`, `jax.tree_unflatten`, `jax.tree_leaves`,
  `jax.tree_structure`: removed in jax 0.6; praxis 1.4.0 calls `jax.tree_map`
  about a hundred times (at trace time, not import time).
* `jnp.reshape(..., newshape=...)`: the `newshape` keyword was removed in
  jax 0.8 (renamed `shape`); praxis 1.4.0's beam search
  (`decoder_utils.two_stage_topk`) still passes it. The wrapper maps it.
* `np.unicode_`: removed in NumPy 2.0; paxml's `xla_passthrough` (used by
  the decode programs on every batch) still calls it. Aliased to `np.str_`.
* `jax.lib.xla_client`: removed in jax 0.9; `praxis/base_input.py` imports it.
  Present in 0.8.3, patched here so a later jax bump fails loudly elsewhere
  (paxml needs `pjit.AUTO`, gone in 0.9) rather than here.
"""

import functools
import inspect
import sys

import jax
import jax.lib
import jax.numpy as jnp
import jax.tree_util as _tree_util
import numpy as np

_TREE_ALIASES = {
  'tree_map': _tree_util.tree_map,
  'tree_flatten': _tree_util.tree_flatten,
  'tree_unflatten': _tree_util.tree_unflatten,
  'tree_leaves': _tree_util.tree_leaves,
  'tree_structure': _tree_util.tree_structure,
}

for _name, _fn in _TREE_ALIASES.items():
  try:
    getattr(jax, _name)
  except AttributeError:
    setattr(jax, _name, _fn)

if 'newshape' not in inspect.signature(jnp.reshape).parameters:
  _reshape = jnp.reshape

  @functools.wraps(_reshape)
  def _reshape_accepting_newshape(a, shape=None, order='C', *, newshape=None, **kwargs):  # noqa: ANN001, ANN202
    return _reshape(a, newshape if shape is None else shape, order=order, **kwargs)

  jnp.reshape = _reshape_accepting_newshape

if not hasattr(np, 'unicode_'):
  np.unicode_ = np.str_

try:
  from jax.lib import xla_client as _xla_client  # noqa: F401
except ImportError:  # jax >= 0.9
  from jax._src.lib import xla_client as _xla_client

  jax.lib.xla_client = _xla_client
  sys.modules['jax.lib.xla_client'] = _xla_client
