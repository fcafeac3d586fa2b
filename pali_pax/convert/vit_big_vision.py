"""big_vision ViT checkpoint (.npz) -> VisionTransformer params.

big_vision saves flat npz files whose keys are the flax module paths joined by
'/', for example

    embedding/kernel [p, p, 3, D], embedding/bias [D], pos_embedding [1, T, D]
    Transformer/encoderblock_{i}/LayerNorm_0/{scale,bias}
    Transformer/encoderblock_{i}/MultiHeadDotProductAttention_0/{query,key,value}/kernel [D, N, H]
    Transformer/encoderblock_{i}/MultiHeadDotProductAttention_0/{query,key,value}/bias [N, H]
    Transformer/encoderblock_{i}/MultiHeadDotProductAttention_0/out/kernel [N, H, D]
    Transformer/encoderblock_{i}/LayerNorm_1/{scale,bias}
    Transformer/encoderblock_{i}/MlpBlock_0/Dense_{0,1}/{kernel,bias}
    Transformer/encoder_norm/{scale,bias}

Also handled: a leading scope such as 'params/' or 'params/img/' (two-tower
SigLIP/LiT checkpoints: only the image tower is read), scanned checkpoints
('Transformer/encoderblock/...' with a leading [depth] axis), the pre-linen
naming of the original ViT release (LayerNorm_2, MlpBlock_3, ...,
'Transformer/posembed_input/pos_embedding') and a class-token row in the
position embedding. Pooling heads ('head/*', 'MAPHead_0/*', 'pre_logits/*')
and 'cls' are skipped with a logged note: PaLI feeds every patch token on.
"""

import logging
import os
import re
import zipfile
from typing import Any

import numpy as np
from praxis import pax_fiddle
from tqdm import tqdm

from pali_pax.convert.vit_common import (
  ViTConfigOrLayer,
  build_params,
  canonical_to_source,
  dims_from_canonical,
  split_cls_posemb,
)
from pali_pax.core import errors
from pali_pax.core.errors import CheckpointMismatchError
from pali_pax.layers.vit import VisionTransformer

log = logging.getLogger(__name__)

_ANCHOR = 'embedding/kernel'
_SKIPPED_SCOPES = ('head', 'MAPHead_0', 'pre_logits', 'cls', 'probe')
_BLOCK_NAMES = {
  'LayerNorm_0/scale': 'ln1/scale',
  'LayerNorm_0/bias': 'ln1/bias',
  'LayerNorm_1/scale': 'ln2/scale',
  'LayerNorm_1/bias': 'ln2/bias',
  'MlpBlock_0/Dense_0/kernel': 'fc1/w',
  'MlpBlock_0/Dense_0/bias': 'fc1/b',
  'MlpBlock_0/Dense_1/kernel': 'fc2/w',
  'MlpBlock_0/Dense_1/bias': 'fc2/b',
  'MultiHeadDotProductAttention_0/out/bias': 'o/b',
}
for _bv, _c in (('query', 'q'), ('key', 'k'), ('value', 'v')):
  _BLOCK_NAMES[f'MultiHeadDotProductAttention_0/{_bv}/kernel'] = f'{_c}/w'
  _BLOCK_NAMES[f'MultiHeadDotProductAttention_0/{_bv}/bias'] = f'{_c}/b'
_OUT_KERNEL = 'MultiHeadDotProductAttention_0/out/kernel'
_GLOBAL_NAMES = {
  'embedding/kernel': 'patch/w',
  'embedding/bias': 'patch/b',
  'pos_embedding': 'pos',
  'Transformer/pos_embedding': 'pos',
  'Transformer/posembed_input/pos_embedding': 'pos',
  'Transformer/encoder_norm/scale': 'norm/scale',
  'Transformer/encoder_norm/bias': 'norm/bias',
}
_BLOCK_RE = re.compile(r'^Transformer/encoderblock(?:_(\d+))?/(.+)$')
_MODULE_RE = re.compile(r'^(\w+?)_(\d+)$')


def find_prefix(keys: list[str], source: str) -> str:
  """The scope holding the ViT: '' / 'params/' / 'params/img/' ... ('' + 'embedding/kernel')."""
  hits = [k[: -len(_ANCHOR)] for k in keys if k == _ANCHOR or k.endswith('/' + _ANCHOR)]
  hits = [h for h in hits if h == '' or h.endswith('/')]
  if len(hits) != 1:
    raise CheckpointMismatchError(
      f'{source}: cannot locate the ViT: expected exactly one "<scope>/{_ANCHOR}" tensor, '
      f'found {len(hits)} ({hits[:5]}); pass prefix= explicitly'
    )
  return hits[0]


def _renumber_pre_linen(inner: str, block_modules: dict[str, list[int]]) -> str:
  """Pre-linen numbering (LayerNorm_0, LayerNorm_2, MlpBlock_3) -> per-type (0, 1, 0)."""
  head, _, rest = inner.partition('/')
  m = _MODULE_RE.match(head)
  if not m:
    return inner
  base, idx = m.group(1), int(m.group(2))
  order = sorted(block_modules.get(base, [idx]))
  return f'{base}_{order.index(idx)}/{rest}' if idx in order else inner


def _block_modules(keys: list[str]) -> dict[str, list[int]]:
  """Module types and their indices inside one encoder block, e.g. {'LayerNorm': [0, 2]}."""
  found: dict[str, set[int]] = {}
  for k in keys:
    m = _BLOCK_RE.match(k)
    if not m:
      continue
    head = m.group(2).split('/')[0]
    mm = _MODULE_RE.match(head)
    if mm:
      found.setdefault(mm.group(1), set()).add(int(mm.group(2)))
  return {k: sorted(v) for k, v in found.items()}


def _block_target(inner: str) -> str | None:
  """'MultiHeadDotProductAttention_0/out/kernel' -> 'o/w' etc.; None if unknown."""
  return 'o/w' if inner == _OUT_KERNEL else _BLOCK_NAMES.get(inner)


def _to_canonical(target: str, arr: np.ndarray) -> np.ndarray:
  """Per-layer big_vision array -> canonical layout (only the out kernel differs)."""
  if target == 'o/w' and arr.ndim == 3:
    return np.transpose(arr, (2, 0, 1))  # [N, H, D] -> [D, N, H]
  return arr


def from_canonical(kind: str, arr: np.ndarray) -> np.ndarray:
  """Canonical tensor -> big_vision layout (inverse of `_to_canonical`); `kind` e.g. 'o/w'."""
  if kind == 'o/w' and arr.ndim == 3:
    return np.transpose(arr, (1, 2, 0))  # [D, N, H] -> [N, H, D]
  return arr


def source_name(canonical: str, prefix: str = '', scanned: bool = False) -> str:
  """Canonical name -> big_vision key ('block/1/o/w' -> '...encoderblock_1/.../out/kernel')."""

  def block_key(i: str, inner: str) -> str:
    if scanned:
      return f'Transformer/encoderblock/{inner}[{i}]'
    return f'Transformer/encoderblock_{i}/{inner}'

  block_names = {**_BLOCK_NAMES, _OUT_KERNEL: 'o/w'}
  return prefix + canonical_to_source(canonical, _GLOBAL_NAMES, block_names, block_key)


def convert_big_vision_arrays(
  arrays: dict[str, np.ndarray], source: str = '<arrays>', prefix: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
  """big_vision flat arrays -> (canonical tensors, {canonical: source name}, prefix)."""
  keys = list(arrays)
  if prefix is None:
    prefix = find_prefix(keys, source)
  inside = [k for k in keys if k.startswith(prefix)]
  outside = len(keys) - len(inside)
  if outside:
    log.info('%s: ignoring %d tensors outside the ViT scope %r', source, outside, prefix)
  rel = {k[len(prefix) :]: k for k in inside}
  modules = _block_modules(list(rel))
  canonical: dict[str, np.ndarray] = {}
  names: dict[str, str] = {}
  skipped = []
  bar = tqdm(rel.items(), desc=f'ViT {os.path.basename(source)}', unit='tensor', leave=False)
  for name, full in bar:
    arr = np.asarray(arrays[full])
    if name.split('/')[0] in _SKIPPED_SCOPES:
      skipped.append(full)
      continue
    if name in _GLOBAL_NAMES:
      target = _GLOBAL_NAMES[name]
      if target == 'pos':
        arr = split_cls_posemb(arr, full)
      canonical[target], names[target] = arr, full
      continue
    m = _BLOCK_RE.match(name)
    target = _block_target(_renumber_pre_linen(m.group(2), modules)) if m else None
    if target is None:
      canonical[f'unmapped/{full}'], names[f'unmapped/{full}'] = arr, full
    elif m.group(1) is not None:  # encoderblock_{i}
      canonical[f'block/{m.group(1)}/{target}'] = _to_canonical(target, arr)
      names[f'block/{m.group(1)}/{target}'] = full
    elif arr.ndim == 0:
      canonical[f'unmapped/{full}'], names[f'unmapped/{full}'] = arr, full
    else:  # scanned 'encoderblock': leading [depth] axis
      for i, layer_arr in enumerate(arr):
        canonical[f'block/{i}/{target}'] = _to_canonical(target, layer_arr)
        names[f'block/{i}/{target}'] = f'{full}[{i}]'
  if skipped:
    log.info(
      '%s: skipping %d pooling-head tensors (PaLI uses all tokens): %s',
      source,
      len(skipped),
      ', '.join(sorted(skipped)[:8]) + (' ...' if len(skipped) > 8 else ''),
    )
  return canonical, names, prefix


def load_vit_big_vision(
  path: str | os.PathLike,
  cfg_or_layer: ViTConfigOrLayer,
  image_size: int | None = None,
  prefix: str | None = None,
) -> dict[str, Any]:
  """Reads a big_vision ViT .npz into a VisionTransformer `params` tree.

  Args:
    path: the .npz file.
    cfg_or_layer: target VisionTransformer config (or layer).
    image_size: optional new resolution; the learned position embedding is
      bilinearly resampled to its patch grid (e.g. 224 -> 588).
    prefix: scope of the ViT inside the file ('params/img/' ...); found
      automatically when None.

  Returns:
    Nested dict of float32 numpy arrays (the layer's `params` collection).

  Raises:
    CheckpointMismatchError: a tensor is missing, unexpected or mis-shaped.
  """
  source = os.fspath(path)
  arrays = read_npz(source)
  canonical, names, prefix = convert_big_vision_arrays(arrays, source, prefix)
  scanned = _is_scanned(arrays, prefix)
  return build_params(
    canonical,
    names,
    cfg_or_layer,
    source,
    image_size=image_size,
    name_of=lambda c: source_name(c, prefix, scanned),
  )


def _is_scanned(arrays: dict[str, Any], prefix: str) -> bool:
  return any(k.startswith(prefix + 'Transformer/encoderblock/') for k in arrays)


_NPZ = 'big_vision .npz checkpoint'


def read_npz(path: str) -> dict[str, np.ndarray]:
  """All arrays of an .npz file (no pickles).

  Raises:
    FileFormatError: not a readable .npz (names the file).
  """
  with errors.parsing(path, _NPZ):
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
      raise errors.FileFormatError(f'{path}: not a valid {_NPZ} (a single .npy array)')
    with loaded as npz:
      return {k: npz[k] for k in npz.files}


def read_npz_shapes(path: str) -> dict[str, np.ndarray]:
  """Shape-only stand-ins for the arrays of an .npz, read from the .npy headers alone.

  Each value is a zero-strided view of one element (`np.broadcast_to`), so the
  naming code of `convert_big_vision_arrays` runs on it unchanged and nothing
  of the (possibly many GB of) data is read.

  Raises:
    FileFormatError: not a readable .npz (names the file).
  """
  out = {}
  with errors.parsing(path, _NPZ), zipfile.ZipFile(path) as archive:
    for member in archive.namelist():
      with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        read_header = (
          np.lib.format.read_array_header_1_0
          if version == (1, 0)
          else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(f)
      out[member.removesuffix('.npy')] = np.broadcast_to(np.zeros((), dtype), shape)
  return out


def vit_config_from_big_vision(path: str | os.PathLike) -> pax_fiddle.Config[VisionTransformer]:
  """`VisionTransformer` config (learned posemb, scanned) whose sizes a big_vision .npz gives.

  Read through the same naming as the weights (`convert_big_vision_arrays`), so
  every layout the loader accepts (scopes, scanned blocks, pre-linen names, a
  class-token row) gives its sizes here too.
  """
  source = os.fspath(path)
  arrays = read_npz_shapes(source)
  canonical, _, prefix = convert_big_vision_arrays(arrays, source)
  shapes = {k: v.shape for k, v in canonical.items()}
  scanned = _is_scanned(arrays, prefix)
  dims = dims_from_canonical(shapes, source, lambda c: source_name(c, prefix, scanned))
  return pax_fiddle.Config(VisionTransformer, name='vit', scan=True, posemb='learn', **dims)
