"""Pieces shared by the ViT checkpoint converters (big_vision and HF).

Both readers (`vit_big_vision`, `vit_hf`) first translate a checkpoint into
*canonical* names, one flat dict independent of the source format:

    patch/w [p, p, 3, D]   patch/b [D]   pos [1, T, D]   norm/scale, norm/bias [D]
    block/{i}/ln1/{scale,bias} [D]        block/{i}/ln2/{scale,bias} [D]
    block/{i}/{q,k,v}/w [D, N, H]         block/{i}/{q,k,v}/b [N, H]
    block/{i}/o/w [D, N, H]               block/{i}/o/b [D]
    block/{i}/fc1/w [D, F]  fc1/b [F]     block/{i}/fc2/w [F, D]  fc2/b [D]

plus `unmapped/<source name>` for tensors they could not place. This module maps
canonical names onto the VisionTransformer parameter tree (per-layer, then
stacked by `tree.stack_layer_params` when scanned), resamples the position
embedding when asked, checks everything strictly through `fill_tree`, and
reads a config's sizes off canonical shapes (`dims_from_canonical`).
"""

import logging
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from praxis import base_layer, pax_fiddle

from pali_pax.core import params as params_lib
from pali_pax.core import tree
from pali_pax.core.errors import CheckpointMismatchError
from pali_pax.layers.vit import VisionTransformer, resample_posemb

log = logging.getLogger(__name__)

ViTConfigOrLayer = pax_fiddle.Config[VisionTransformer] | VisionTransformer

_GLOBAL = {
  'patch/w': 'patch_embedding/w',
  'patch/b': 'patch_embedding/b',
  'pos': 'pos_embedding',
  'norm/scale': 'encoder_norm/scale',
  'norm/bias': 'encoder_norm/bias',
}
_BLOCK = {
  'ln1/scale': 'layer_norm/scale',
  'ln1/bias': 'layer_norm/bias',
  'q/w': 'self_attention/query/w',
  'q/b': 'self_attention/query/b',
  'k/w': 'self_attention/key/w',
  'k/b': 'self_attention/key/b',
  'v/w': 'self_attention/value/w',
  'v/b': 'self_attention/value/b',
  'o/w': 'self_attention/post/w',
  'o/b': 'self_attention/post/b',
  'ln2/scale': 'ff_layer/layer_norm/scale',
  'ln2/bias': 'ff_layer/layer_norm/bias',
  'fc1/w': 'ff_layer/ffn_layer1/linear/w',
  'fc1/b': 'ff_layer/ffn_layer1/bias/b',
  'fc2/w': 'ff_layer/ffn_layer2/linear/w',
  'fc2/b': 'ff_layer/ffn_layer2/bias/b',
}
_PAX_TO_CANON = {v: k for k, v in _GLOBAL.items()}
_PAX_BLOCK_TO_CANON = {v: k for k, v in _BLOCK.items()}
# praxis StackedTransformerRepeated: transformer/repeat/sub/x_layers_0/<block path> [L, ...].
SCAN_PREFIX = 'repeat/sub/x_layers_0/'


def as_layer(cfg_or_layer: ViTConfigOrLayer, **overrides: Any) -> VisionTransformer:
  """A (unbound) VisionTransformer from a config or a layer, with hparam overrides."""
  if isinstance(cfg_or_layer, pax_fiddle.Config):
    cfg = cfg_or_layer.clone()
    for key, value in overrides.items():
      setattr(cfg, key, value)
    if not cfg.name:
      cfg.name = 'vit'
    layer = base_layer.instantiate(cfg)
  elif isinstance(cfg_or_layer, VisionTransformer):
    layer = cfg_or_layer.clone(**overrides) if overrides else cfg_or_layer
  else:
    raise TypeError(
      f'expected a pax_fiddle.Config[VisionTransformer] or a VisionTransformer, got {cfg_or_layer!r}'
    )
  return layer


def param_shapes(layer: VisionTransformer) -> dict[str, Any]:
  """Abstract `params` tree of `layer` (jax.ShapeDtypeStruct leaves; nothing allocated)."""
  images = jax.ShapeDtypeStruct((1, layer.image_size, layer.image_size, 3), jnp.float32)
  return params_lib.abstract_params(layer, images)


def canonical_to_pax(name: str) -> str:
  """'block/3/q/w' -> 'transformer/x_layers_3/self_attention/query/w' (per-layer layout)."""
  if name in _GLOBAL:
    return _GLOBAL[name]
  parts = name.split('/')
  if parts[0] == 'block' and len(parts) >= 3 and '/'.join(parts[2:]) in _BLOCK:
    return f'transformer/x_layers_{parts[1]}/{_BLOCK["/".join(parts[2:])]}'
  return name  # 'unmapped/...': left for fill_tree to report as unexpected.


def pax_to_canonical(path: str) -> str:
  """Inverse of `canonical_to_pax` for per-layer paths (used to name missing tensors)."""
  if path in _PAX_TO_CANON:
    return _PAX_TO_CANON[path]
  parts = path.split('/')
  if len(parts) > 2 and parts[0] == 'transformer' and parts[1].startswith('x_layers_'):
    i = parts[1][len('x_layers_') :]
    return f'block/{i}/{_PAX_BLOCK_TO_CANON.get("/".join(parts[2:]), "/".join(parts[2:]))}'
  return path


def canonical_to_source(
  canonical: str,
  global_names: Mapping[str, str],
  block_names: Mapping[str, str],
  block_key: Callable[[str, str], str],
) -> str:
  """Canonical name -> its name in a source format, from a converter's mapping tables.

  Args:
    canonical: e.g. 'norm/scale' or 'block/1/fc2/w'.
    global_names: {source name: canonical name} of the tensors outside the
      blocks (the first source name of a canonical name is used).
    block_names: {name inside a block: canonical name inside it ('fc2/w')}.
    block_key: (block index, name inside the block) -> full source name.

  Returns:
    The source name, or `canonical` itself when the tables do not know it.
  """
  for source, c in global_names.items():
    if c == canonical:
      return source
  parts = canonical.split('/', 2)
  if parts[0] == 'block' and len(parts) == 3:
    inner = {c: source for source, c in block_names.items()}.get(parts[2])
    if inner is not None:
      return block_key(parts[1], inner)
  return canonical


def split_cls_posemb(pos: np.ndarray, source_name: str) -> np.ndarray:
  """Drops a class-token row from a [1, 1 + s*s, D] position embedding (with a warning)."""
  n = pos.shape[1]
  side = int(round(np.sqrt(n - 1))) if n > 1 else 0
  if pos.ndim == 3 and side * side + 1 == n and int(round(np.sqrt(n))) ** 2 != n:
    log.warning(
      '%s has %d = %d^2 + 1 rows: dropping the class-token row (this ViT has no class token)',
      source_name,
      n,
      side,
    )
    return pos[:, 1:]
  return pos


def build_params(
  canonical: Mapping[str, np.ndarray],
  source_names: Mapping[str, str],
  cfg_or_layer: ViTConfigOrLayer,
  source: str,
  image_size: int | None = None,
  name_of: Callable[[str], str] | None = None,
) -> dict[str, Any]:
  """Canonical tensors -> VisionTransformer `params` tree, strictly checked.

  Args:
    canonical: {canonical name: array} from a converter.
    source_names: {canonical name: name in the source checkpoint}.
    cfg_or_layer: the target ViT (config or layer).
    source: checkpoint path, for messages.
    image_size: if given, the tree is for this image size and the learned
      position embedding is bilinearly resampled to its patch grid.
    name_of: canonical name -> the name that tensor would have in the source
      format, so that a *missing* tensor is reported by its checkpoint name.

  Returns:
    Nested dict of float32 numpy arrays, the layer's `params` collection.

  Raises:
    CheckpointMismatchError: missing, unexpected or mis-shaped tensors.
  """
  overrides = {'image_size': int(image_size)} if image_size is not None else {}
  layer = as_layer(cfg_or_layer, **overrides)
  canonical = dict(canonical)
  if 'pos' in canonical and layer.posemb == 'learn':
    pos = np.asarray(canonical['pos'])
    want = layer.num_patches
    if image_size is not None and pos.ndim == 3 and pos.shape[1] != want:
      log.info('resampling %s %s to grid %s', source_names.get('pos'), pos.shape, layer.grid_size)
      canonical['pos'] = resample_posemb(pos, layer.grid_size)

  # Check in the per-layer layout, where every tensor has its own name.
  flat_layer = layer.clone(scan=False) if layer.scan else layer
  expected = tree.flatten(param_shapes(flat_layer))
  loaded = {canonical_to_pax(k): v for k, v in canonical.items()}
  names = {canonical_to_pax(k): source_names.get(k, k) for k in canonical}
  missing = sorted(set(expected) - set(loaded))
  name_of = name_of or (lambda c: c)
  problems = [
    f'missing tensor {name_of(pax_to_canonical(p))} (model {p} {tuple(expected[p].shape)})'
    for p in missing
  ]
  present = {k: v for k, v in expected.items() if k not in missing}
  try:
    params = tree.fill_tree(tree.unflatten(present), loaded, source, names)
  except CheckpointMismatchError as e:
    problems.append(str(e).removeprefix(f'{source}: '))
  if problems:
    if image_size is None and any('pos_embedding' in p for p in problems):
      problems.append(
        'to load at another resolution pass image_size=..., which resamples the position embedding'
      )
    raise CheckpointMismatchError(f'{source}: ' + '; '.join(problems))
  if not layer.scan:
    return params
  stacked = tree.stack_layer_params(tree.flatten(params), SCAN_PREFIX)
  return tree.fill_tree(param_shapes(layer), stacked, source)


def dims_from_canonical(
  shapes: Mapping[str, tuple[int, ...]], source: str, name_of: Callable[[str], str]
) -> dict[str, int]:
  """VisionTransformer sizes read off canonical tensor shapes (class-token row already dropped).

  patch / width from patch/w [p, p, C, D], image size from pos [1, N, D] (a
  square grid of N patches), depth from the block indices, mlp from fc1/w
  [D, F], heads from q/w [D, N, H]. `name_of` gives a canonical name's name in
  the checkpoint, for messages.

  Raises:
    CheckpointMismatchError: a tensor needed for a size is missing or mis-shaped.
  """
  wanted = {'patch/w': 4, 'pos': 3, 'block/0/fc1/w': 2, 'block/0/q/w': 3}
  problems = [
    f'{name_of(name)} ' + (f'has shape {shapes[name]}' if name in shapes else 'is missing')
    for name, ndim in wanted.items()
    if len(shapes.get(name, ())) != ndim
  ]
  side = int(round(np.sqrt(shapes['pos'][1]))) if not problems else 0
  if not problems and side * side != shapes['pos'][1]:
    problems.append(f'{name_of("pos")} {shapes["pos"]} is not a square grid of patches')
  if problems:
    raise CheckpointMismatchError(
      f'{source}: cannot read the ViT sizes off the checkpoint: ' + '; '.join(problems)
    )
  patch, _, _, width = shapes['patch/w']
  return dict(
    image_size=side * patch,
    patch_size=patch,
    width=width,
    depth=len({name.split('/')[1] for name in shapes if name.startswith('block/')}),
    mlp_dim=shapes['block/0/fc1/w'][1],
    num_heads=shapes['block/0/q/w'][1],
  )


def params_to_canonical(
  params: Mapping[str, Any], cfg_or_layer: ViTConfigOrLayer, source: str = '<params>'
) -> dict[str, np.ndarray]:
  """VisionTransformer `params` tree -> {canonical name: float32 array} (inverse of `build_params`).

  A scanned tree is unstacked to per-layer tensors first.

  Raises:
    CheckpointMismatchError: `params` is not exactly the tree of `cfg_or_layer`.
  """
  layer = as_layer(cfg_or_layer)
  flat = tree.flatten(params)
  if layer.scan:
    flat = tree.unstack_layer_params(flat, SCAN_PREFIX)
  flat_layer = layer.clone(scan=False) if layer.scan else layer
  checked = tree.flatten(tree.fill_tree(param_shapes(flat_layer), flat, source))
  return {pax_to_canonical(path): array for path, array in checked.items()}
