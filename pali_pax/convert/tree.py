"""Strict mapping of loaded checkpoint tensors onto a layer's parameter tree.

Every converter builds a flat `{'a/b/c': array}` dict keyed by the *Pax*
parameter path and hands it to `fill_tree`, which refuses partial loads: a
missing tensor, an unexpected one or a wrong shape is an error that names the
tensor (in the source checkpoint's own naming where the converter knows it).
"""

from collections.abc import Mapping
from typing import Any

import numpy as np


class CheckpointMismatchError(ValueError):
  """A checkpoint does not fit the model it is being loaded into."""


def flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  """Nested dicts -> {'a/b/c': leaf}."""
  flat = {}
  for key, value in tree.items():
    path = f'{prefix}/{key}' if prefix else str(key)
    if isinstance(value, Mapping):
      flat.update(flatten(value, path))
    else:
      flat[path] = value
  return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
  """{'a/b/c': leaf} -> nested dicts."""
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    *parents, leaf = path.split('/')
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = value
  return tree


def fill_tree(
  expected: Mapping[str, Any],
  loaded: Mapping[str, np.ndarray],
  source: str,
  source_names: Mapping[str, str] | None = None,
  dtype: Any = np.float32,
) -> dict[str, Any]:
  """Checks `loaded` against `expected` and returns it as a nested tree.

  Args:
    expected: nested tree whose leaves have `.shape` (e.g. the result of
      `jax.eval_shape(layer.init, ...)['params']`).
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
  for path in sorted(set(want) & set(loaded)):
    got = tuple(np.shape(loaded[path]))
    if got != want[path]:
      problems.append(
        f'shape mismatch for {names.get(path, path)}: checkpoint {got}, model {path} expects {want[path]}'
      )
  if problems:
    raise CheckpointMismatchError(f'{source}: ' + '; '.join(problems))
  return unflatten({k: np.asarray(v, dtype=dtype) for k, v in loaded.items()})
