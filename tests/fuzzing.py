"""Shared parts of the seeded fuzz tests (tests/pali_pax/test_fuzz_*.py).

Each case feeds one malformed input to a real entry point. Whatever it does, a
failure must be a `pali_pax.core.errors.PaliPaxError` whose message names the input:
the file, the argument, or the offending value (`fails`). Inputs that happen to
stay valid must simply work. The cases are drawn from fixed seeds (`SEED`, plus a
per-category offset), so a failure reproduces exactly.
"""

import copy
import json

from pali_pax.core import errors

SEED = 20261201

# Values a mutation puts anywhere in a JSON document.
JSON_VALUES = [
  None,
  True,
  -1,
  0,
  2**70,
  1.5,
  float('nan'),
  '',
  ' ',
  '../../outside.png',
  '/etc/hostname',
  'gs://bucket/x.png',
  'a\x00b.png',
  '\ud800',
  'é中',
  'x' * 5000,
  [],
  {},
  [1, 'a'],
  {'x': {'y': []}},
]


def fails(failures, case, exc, names):
  """Records `case` unless `exc` is a PaliPaxError naming one of `names`."""
  if not isinstance(exc, errors.PaliPaxError):
    failures.append(f'{case}: not a project error: {type(exc).__name__}: {str(exc)[:300]}')
  elif not any(n in str(exc) for n in names):
    failures.append(f'{case}: message names none of {names}: {str(exc)[:300]}')


def _paths(node, prefix=()):
  """Every path (tuple of keys / indices) into a JSON tree, the root included."""
  yield prefix
  items = (
    node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
  )
  for k, v in items:
    yield from _paths(v, (*prefix, k))


def mutate_tree(doc, rng):
  doc = copy.deepcopy(doc)
  paths = list(_paths(doc))
  path = paths[rng.integers(len(paths))]
  if not path:
    return JSON_VALUES[rng.integers(len(JSON_VALUES))]
  parent = doc
  for k in path[:-1]:
    parent = parent[k]
  if isinstance(parent, dict) and rng.random() < 0.3:
    del parent[path[-1]]
  else:
    parent[path[-1]] = copy.deepcopy(JSON_VALUES[rng.integers(len(JSON_VALUES))])
  return doc


def serialise(name, doc):
  if name.endswith('.jsonl') and isinstance(doc, list):
    return '\n'.join(json.dumps(row) for row in doc).encode('utf-8', 'surrogatepass')
  return json.dumps(doc).encode('utf-8', 'surrogatepass')


def mutate_bytes(data, rng):
  kind = rng.integers(6)
  if kind == 0:
    return data[: rng.integers(len(data))]  # truncated
  if kind == 1:
    b = bytearray(data)
    for _ in range(rng.integers(1, 4)):
      b[rng.integers(len(b))] = int(rng.integers(256))  # flipped bytes (often not UTF-8)
    return bytes(b)
  if kind == 2:
    return b''
  if kind == 3:
    return '\ufeff'.encode() + data  # a BOM
  if kind == 4:
    return b'[' * 50_000 + b']' * 50_000  # nesting past the recursion limit
  return data.replace(b'a', 'á'.encode('latin-1'), 1)  # one Latin-1 byte
