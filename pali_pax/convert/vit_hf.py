"""Hugging Face SigLIP vision tower -> VisionTransformer params.

Reads a directory written by `save_pretrained` of a `SiglipVisionModel`, a
`SiglipModel` (its `vision_model.*` tower) or any model embedding one (e.g.
`vision_tower.vision_model.*`): `config.json` plus `model.safetensors` (or a
sharded `model.safetensors.index.json`, or `pytorch_model.bin` when PyTorch is
importable; see `hf_files`). The tower is found by its `embeddings.patch_embedding.weight`.

Key mapping (torch Linear weights are [out, in]; D = hidden, N heads of H):

    embeddings.patch_embedding.weight [D, 3, p, p] -> patch/w [p, p, 3, D]
    embeddings.position_embedding.weight [T, D]    -> pos [1, T, D]
    encoder.layers.{i}.layer_norm{1,2}.{weight,bias} -> ln{1,2}/{scale,bias}
    encoder.layers.{i}.self_attn.{q,k,v}_proj.weight [D, D] -> [D, N, H] (transposed)
    encoder.layers.{i}.self_attn.out_proj.weight [D, D]     -> [D, N, H]
    encoder.layers.{i}.mlp.fc{1,2}.weight          -> fc{1,2}/w (transposed)
    post_layernorm.{weight,bias}                   -> norm/{scale,bias}

`head.*` (SigLIP's attention-pooling head) and tensors outside the tower are
skipped with a logged note.
"""

import logging
import os
import re
from typing import Any

import numpy as np
from praxis import pax_fiddle
from tqdm import tqdm

from pali_pax.convert import hf_files
from pali_pax.convert.vit_common import (
  ViTConfigOrLayer,
  as_layer,
  build_params,
  canonical_to_source,
  split_cls_posemb,
)
from pali_pax.core.errors import CheckpointMismatchError
from pali_pax.layers.vit import VisionTransformer

log = logging.getLogger(__name__)

_ANCHOR = 'embeddings.patch_embedding.weight'
_TANH_GELUS = ('gelu_pytorch_tanh', 'gelu_new', 'gelu_fast')
# SigLIP vision defaults: save_pretrained omits fields equal to them.
_DEFAULTS = {
  'hidden_size': 768,
  'num_attention_heads': 12,
  'layer_norm_eps': 1e-6,
  'hidden_act': 'gelu_pytorch_tanh',
  'image_size': 224,
  'patch_size': 16,
  'num_channels': 3,
  'num_hidden_layers': 12,
  'intermediate_size': 3072,
}
# config.json size -> VisionTransformer attribute.
CONFIG_SIZES = {
  'image_size': 'image_size',
  'patch_size': 'patch_size',
  'hidden_size': 'width',
  'num_hidden_layers': 'depth',
  'intermediate_size': 'mlp_dim',
  'num_attention_heads': 'num_heads',
}
_LAYER_RE = re.compile(r'^encoder\.layers\.(\d+)\.(.+)$')
_LAYER_NAMES = {
  'layer_norm1.weight': 'ln1/scale',
  'layer_norm1.bias': 'ln1/bias',
  'layer_norm2.weight': 'ln2/scale',
  'layer_norm2.bias': 'ln2/bias',
  'self_attn.q_proj.weight': 'q/w',
  'self_attn.q_proj.bias': 'q/b',
  'self_attn.k_proj.weight': 'k/w',
  'self_attn.k_proj.bias': 'k/b',
  'self_attn.v_proj.weight': 'v/w',
  'self_attn.v_proj.bias': 'v/b',
  'self_attn.out_proj.weight': 'o/w',
  'self_attn.out_proj.bias': 'o/b',
  'mlp.fc1.weight': 'fc1/w',
  'mlp.fc1.bias': 'fc1/b',
  'mlp.fc2.weight': 'fc2/w',
  'mlp.fc2.bias': 'fc2/b',
}
_GLOBAL_NAMES = {
  'embeddings.patch_embedding.weight': 'patch/w',
  'embeddings.patch_embedding.bias': 'patch/b',
  'embeddings.position_embedding.weight': 'pos',
  'post_layernorm.weight': 'norm/scale',
  'post_layernorm.bias': 'norm/bias',
}


def read_vision_config(directory: str) -> dict[str, Any]:
  """The vision-tower config from config.json, with SigLIP defaults filled in."""
  cfg = hf_files.read_config(directory)
  if isinstance(cfg.get('vision_config'), dict):
    cfg = cfg['vision_config']
  return {**_DEFAULTS, **cfg}


def vit_config_from_hf(directory: str | os.PathLike) -> pax_fiddle.Config[VisionTransformer]:
  """`VisionTransformer` config (learned posemb, scanned) from a HF SigLIP config.json.

  Raises:
    FileFormatError: config.json is not JSON, or a size is missing or not a
      positive number (names the file and the field).
  """
  source = os.path.join(os.fspath(directory), hf_files.CONFIG)
  hf = read_vision_config(os.fspath(directory))
  dims = {ours: hf_files.positive(hf, key, source) for key, ours in CONFIG_SIZES.items()}
  eps = hf_files.positive(hf, 'layer_norm_eps', source, float)
  return pax_fiddle.Config(
    VisionTransformer, name='vit', scan=True, posemb='learn', layer_norm_epsilon=eps, **dims
  )


def find_prefix(keys: list[str], source: str) -> str:
  """Scope of the vision tower: 'vision_model.' / 'vision_tower.vision_model.' / ''."""
  hits = [k[: -len(_ANCHOR)] for k in keys if k == _ANCHOR or k.endswith('.' + _ANCHOR)]
  if len(hits) != 1:
    raise CheckpointMismatchError(
      f'{source}: cannot locate the vision tower: expected one "<prefix>{_ANCHOR}", '
      f'found {len(hits)} ({hits[:5]})'
    )
  return hits[0]


def _heads(arr: np.ndarray, n: int) -> np.ndarray | None:
  """[..., N*H] -> [..., N, H], or None when the size does not split into n heads."""
  if arr.shape[-1] % n:
    return None
  return arr.reshape(*arr.shape[:-1], n, arr.shape[-1] // n)


def _to_canonical(target: str, arr: np.ndarray, num_heads: int) -> np.ndarray:
  """One HF tensor -> canonical layout; returned unchanged when it cannot fit."""
  arr = np.asarray(arr, np.float32)
  if target == 'patch/w' and arr.ndim == 4:
    return arr.transpose(2, 3, 1, 0)  # [D, C, p, p] -> [p, p, C, D]
  if target == 'pos' and arr.ndim == 2:
    return arr[None]
  if target in ('q/w', 'k/w', 'v/w') and arr.ndim == 2:
    out = _heads(arr.T, num_heads)  # [out, in] -> [in, out] -> [D, N, H]
  elif target in ('q/b', 'k/b', 'v/b') and arr.ndim == 1:
    out = _heads(arr, num_heads)
  elif target == 'o/w' and arr.ndim == 2:
    out = _heads(arr, num_heads)  # [D_out, N*H] -> [D, N, H]
  elif target in ('fc1/w', 'fc2/w') and arr.ndim == 2:
    out = arr.T
  else:
    out = arr
  return arr if out is None else out


def from_canonical(kind: str, arr: np.ndarray) -> np.ndarray:
  """Canonical tensor -> HF layout (inverse of `_to_canonical`); `kind` e.g. 'q/w', 'pos'."""
  if kind == 'patch/w':
    return arr.transpose(3, 2, 0, 1)  # [p, p, C, D] -> [D, C, p, p]
  if kind == 'pos':
    return arr[0]
  if kind in ('q/w', 'k/w', 'v/w'):
    return arr.reshape(arr.shape[0], -1).T  # [D, N, H] -> [N*H, D]
  if kind in ('q/b', 'k/b', 'v/b'):
    return arr.reshape(-1)
  if kind == 'o/w':
    return arr.reshape(arr.shape[0], -1)  # [D, N, H] -> [D_out, N*H]
  if kind in ('fc1/w', 'fc2/w'):
    return arr.T
  return arr


def _check_config(hf: dict[str, Any], layer: Any, source: str) -> None:
  config = os.path.join(source, hf_files.CONFIG)
  heads = hf_files.positive(hf, 'num_attention_heads', config)
  eps = hf_files.positive(hf, 'layer_norm_eps', config, float)
  patch = hf_files.positive(hf, 'patch_size', config)
  problems = []
  if hf['hidden_act'] not in _TANH_GELUS:
    problems.append(
      f'hidden_act={hf["hidden_act"]!r} (this ViT uses tanh-approximated GELU: {_TANH_GELUS})'
    )
  if heads != layer.num_heads:
    problems.append(f'num_attention_heads={heads}, model has {layer.num_heads}')
  if not np.isclose(eps, layer.layer_norm_epsilon, rtol=1e-3, atol=0):
    problems.append(
      f'layer_norm_eps={eps}, model has layer_norm_epsilon={layer.layer_norm_epsilon}'
    )
  if patch != layer.patch_size:
    problems.append(f'patch_size={patch}, model has {layer.patch_size}')
  if problems:
    raise CheckpointMismatchError(f'{config}: ' + '; '.join(problems))


def source_name(canonical: str, prefix: str = 'vision_model.') -> str:
  """Canonical name -> HF key ('block/1/fc2/w' -> 'vision_model.encoder.layers.1.mlp.fc2.weight')."""
  return prefix + canonical_to_source(
    canonical, _GLOBAL_NAMES, _LAYER_NAMES, lambda i, inner: f'encoder.layers.{i}.{inner}'
  )


def convert_hf_arrays(
  arrays: dict[str, np.ndarray], num_heads: int, source: str = '<arrays>'
) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
  """HF state dict -> (canonical tensors, {canonical name: HF key}, tower prefix)."""
  prefix = find_prefix(list(arrays), source)
  inside = {k[len(prefix) :]: k for k in arrays if k.startswith(prefix)}
  if len(inside) < len(arrays):
    log.info(
      '%s: ignoring %d tensors outside the vision tower %r',
      source,
      len(arrays) - len(inside),
      prefix,
    )
  canonical: dict[str, np.ndarray] = {}
  names: dict[str, str] = {}
  skipped = []
  desc = f'ViT {os.path.basename(os.path.normpath(source))}'
  for name, full in tqdm(inside.items(), desc=desc, unit='tensor', leave=False):
    if name.startswith('head.'):
      skipped.append(full)
      continue
    if name == 'embeddings.position_ids':  # a buffer, not a weight (older transformers)
      continue
    m = _LAYER_RE.match(name)
    if name in _GLOBAL_NAMES:
      kind = target = _GLOBAL_NAMES[name]
    elif m and m.group(2) in _LAYER_NAMES:
      kind = _LAYER_NAMES[m.group(2)]
      target = f'block/{m.group(1)}/{kind}'
    else:
      kind = target = f'unmapped/{full}'
    arr = _to_canonical(kind, arrays[full], num_heads)
    if target == 'pos':
      arr = split_cls_posemb(arr, full)
    canonical[target], names[target] = arr, full
  if skipped:
    log.info(
      '%s: skipping %d pooling-head tensors (head.*): PaLI uses all tokens', source, len(skipped)
    )
  return canonical, names, prefix


def load_vit_hf(
  directory: str | os.PathLike,
  cfg_or_layer: ViTConfigOrLayer,
  image_size: int | None = None,
) -> dict[str, Any]:
  """Reads a Hugging Face SigLIP vision tower into a VisionTransformer `params` tree.

  Args:
    directory: HF model directory (config.json + weights).
    cfg_or_layer: target VisionTransformer config (or layer).
    image_size: optional new resolution; the learned position embedding is
      bilinearly resampled to its patch grid.

  Returns:
    Nested dict of float32 numpy arrays (the layer's `params` collection).

  Raises:
    CheckpointMismatchError: incompatible config, or a missing / unexpected /
      mis-shaped tensor (named by its HF key).
  """
  source = os.fspath(directory)
  layer = as_layer(cfg_or_layer)
  _check_config(read_vision_config(source), layer, source)
  arrays = hf_files.read_hf_tensors(source)
  canonical, names, prefix = convert_hf_arrays(arrays, layer.num_heads, source)
  return build_params(
    canonical,
    names,
    cfg_or_layer,
    source,
    image_size=image_size,
    name_of=lambda c: source_name(c, prefix),
  )
