"""Flat parameter dicts: strict filling of a layer's tree, and the scanned layout.

Every converter builds a flat `{'a/b/c': array}` dict keyed by the *Pax*
parameter path, in the per-layer layout (`.../x_layers_{i}/...`), and hands it
to `fill_tree`, which refuses partial loads: a missing tensor, an unexpected one
or a wrong shape is an error that names the tensor (in the source checkpoint's
own naming where the converter knows it). A stack built with `scan=True` then
gets its layers stacked by `stack_layer_params`.
"""

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import traverse_util

from pali_pax.core.errors import CheckpointMismatchError

# mT5 stacks under praxis `Repeat`: '<stack>/repeat/sub/<path>'.
SCAN_PREFIX = 'repeat/sub/'
_LAYER_RE = re.compile(r'^(?:(.*)/)?x_layers_(\d+)/(.*)$')


def flatten(tree: Mapping[str, Any]) -> dict[str, Any]:
  """Nested dicts -> {'a/b/c': leaf}."""
  return traverse_util.flatten_dict(tree, sep='/')


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
  """{'a/b/c': leaf} -> nested dicts."""
  return traverse_util.unflatten_dict(dict(flat), sep='/')


def stack_layer_params(flat: Mapping[str, Any], scan_prefix: str = SCAN_PREFIX) -> dict[str, Any]:
  """Per-layer layout -> scanned layout, on a flat {'a/b/c': array} dict.

  Every `<head>/x_layers_{i}/<path>` (i = 0..L-1) becomes one
  `<head>/<scan_prefix><path>` array stacked along a new leading [L] axis; other
  entries pass through. mT5 stacks use the default; the ViT's praxis
  `StackedTransformerRepeated` nests one more level ('repeat/sub/x_layers_0/').

  Raises:
    CheckpointMismatchError: a stack's layers are not 0..L-1 or do not all have
      the same paths.
  """
  out: dict[str, Any] = {}
  groups: dict[tuple[str, str], dict[int, Any]] = {}
  for path, value in flat.items():
    m = _LAYER_RE.match(path)
    if m is None:
      out[path] = value
      continue
    head = f'{m[1]}/' if m[1] else ''
    groups.setdefault((head, m[3]), {})[int(m[2])] = value
  for (head, rest), layers in groups.items():
    if sorted(layers) != list(range(len(layers))):
      raise CheckpointMismatchError(
        f'{head}x_layers_*/{rest}: layers {sorted(layers)} are not 0..L-1'
      )
    out[f'{head}{scan_prefix}{rest}'] = np.stack(
      [np.asarray(layers[i]) for i in range(len(layers))]
    )
  return out


def unstack_layer_params(flat: Mapping[str, Any], scan_prefix: str = SCAN_PREFIX) -> dict[str, Any]:
  """Scanned layout -> per-layer layout (inverse of `stack_layer_params`)."""
  out: dict[str, Any] = {}
  for path, value in flat.items():
    head, sep, rest = path.partition(scan_prefix)
    if not sep or (head and not head.endswith('/')):
      out[path] = value
      continue
    for i in range(np.shape(value)[0]):
      out[f'{head}x_layers_{i}/{rest}'] = value[i]
  return out


def fill_tree(
  expected: Mapping[str, Any],
  loaded: Mapping[str, np.ndarray],
  source: str,
  source_names: Mapping[str, str] | None = None,
  dtype: Any = np.float32,
) -> dict[str, Any]:
  """Checks `loaded` against `expected` and returns it as a nested tree.

  Args:
    expected: nested tree whose leaves have `.shape` (e.g.
      `params_lib.abstract_params(cfg, ...)`).
    loaded: flat {pax_path: array} built by a converter.
    source: checkpoint path, used in error messages.
    source_names: optional {pax_path: name in the source checkpoint}, so an
      error names the tensor the user can find in their file.
    dtype: dtype of the returned leaves.

  Returns:
    Nested dict of numpy arrays with exactly the structure of `expected`.

  Raises:
    CheckpointMismatchError: on any missing, unexpected or mis-shaped tensor.
  """
  names = dict(source_names or {})
  want = {k: tuple(v.shape) for k, v in flatten(expected).items()}
  problems = []
  for path in sorted(set(want) - set(loaded)):
    problems.append(f'missing tensor for {path} {want[path]}')
  for path in sorted(set(loaded) - set(want)):
    problems.append(f'unexpected tensor {names.get(path, path)} (model has no {path})')
  out = {}
  for path in sorted(set(want) & set(loaded)):
    got = tuple(np.shape(loaded[path]))
    if got != want[path]:
      problems.append(
        f'shape mismatch for {names.get(path, path)}: checkpoint {got}, model {path} expects {want[path]}'
      )
      continue
    try:
      out[path] = np.asarray(loaded[path], dtype=dtype)
    except (TypeError, ValueError):
      problems.append(
        f'tensor {names.get(path, path)} of {np.asarray(loaded[path]).dtype} is not numeric'
      )
  if problems:
    raise CheckpointMismatchError(f'{source}: ' + '; '.join(problems))
  return unflatten(out)
