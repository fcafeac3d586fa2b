"""Compatibility shims that let praxis / paxml 1.4.0 run on jax 0.8.3 and NumPy 2.

Each shim only *adds back* a name that newer jax / NumPy removed, is a no-op
where the name still exists, and is applied by the module whose code path
needs it, not by `import pali_pax`:

| shim                   | removed in | needed by (praxis / paxml 1.4.0)         | applied by              |
|------------------------|------------|------------------------------------------|-------------------------|
| `add_tree_aliases`     | jax 0.6    | `jax.tree_map` & co. at trace time:      | `pali_pax.layers`       |
|                        |            | layers/repeats.py (scan), flax_utils,    | (every praxis layer of  |
|                        |            | sample_decode, optimizers, base_input    | ours imports it)        |
| `allow_reshape_newshape` | jax 0.8  | `jnp.reshape(newshape=)` in              | `pali_pax.model`        |
|                        |            | decoder_utils.two_stage_topk (beam search) | (runs beam search)    |
| `add_np_unicode`       | NumPy 2.0  | `np.unicode_` in paxml xla_passthrough,  | `fiddle_configs.        |
|                        |            | called by paxml's decode programs        | experiment_base` (every |
|                        |            |                                          | experiment paxml runs)  |
| `add_xla_client_alias` | jax 0.10   | `from jax.lib import xla_client` in      | `benchmarks.accelerator`|
|                        |            | praxis/base_input.py (`praxis.layers`)   | (before praxis loads)   |

The first three are looked up when praxis / paxml code *runs*, so applying them
before or after praxis is imported makes no difference; the last is an import, so it
must come first. It serves the model-only path on a newer jax (a GPU image's): paxml
itself also needs `pjit.AUTO`, which jax 0.9 removed, so no shim makes paxml run there.
"""

import functools
import inspect
import sys

import jax
import jax.numpy as jnp
import jax.tree_util
import numpy as np

_TREE_ALIASES = ('tree_map', 'tree_flatten', 'tree_unflatten', 'tree_leaves', 'tree_structure')


def add_tree_aliases() -> None:
  """`jax.tree_map`, `jax.tree_flatten`, ... as the `jax.tree_util` functions."""
  for name in _TREE_ALIASES:
    if not hasattr(jax, name):
      setattr(jax, name, getattr(jax.tree_util, name))


def allow_reshape_newshape() -> None:
  """`jnp.reshape(a, newshape=...)` accepted again (jax 0.8 renamed it `shape`)."""
  if 'newshape' in inspect.signature(jnp.reshape, follow_wrapped=False).parameters:
    return
  reshape = jnp.reshape

  @functools.wraps(reshape)
  def reshape_accepting_newshape(a, shape=None, order='C', *, newshape=None, **kwargs):  # noqa: ANN001, ANN202
    return reshape(a, newshape if shape is None else shape, order=order, **kwargs)

  jnp.reshape = reshape_accepting_newshape


def add_xla_client_alias() -> bool:
  """`jax.lib.xla_client` as `jaxlib.xla_client` where this jax lacks it; True if added.

  Checked with jax 0.10.2 + praxis 1.4.0 (docs/benchmarks.md, "The GPU run").
  """
  import jax.lib

  if hasattr(jax.lib, 'xla_client'):
    return False
  import jaxlib.xla_client

  jax.lib.xla_client = jaxlib.xla_client
  sys.modules['jax.lib.xla_client'] = jaxlib.xla_client
  return True


def add_np_unicode() -> None:
  """`np.unicode_` as `np.str_` (NumPy 2.0 removed the alias)."""
  if not hasattr(np, 'unicode_'):
    np.unicode_ = np.str_
