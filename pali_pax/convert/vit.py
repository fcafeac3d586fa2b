"""Loads a public ViT checkpoint (big_vision .npz or HF SigLIP) into VisionTransformer params.

    from pali_pax.convert.vit import load_vit, vit_config_from_checkpoint
    cfg = vit_config_from_checkpoint('/ckpt/vit_g14.npz')   # or fiddle_configs.vit.vit_config
    params = load_vit('/ckpt/vit_g14.npz', cfg)              # big_vision
    params = load_vit('/ckpt/siglip-so400m', cfg, image_size=588)   # HF, resampled posemb

The readers (`vit_big_vision`, `vit_hf`) share `vit_common`; this module only
tells the formats apart.
"""

import os
from typing import Any

from praxis import pax_fiddle

from pali_pax.convert import hf_files
from pali_pax.convert.vit_big_vision import load_vit_big_vision, vit_config_from_big_vision
from pali_pax.convert.vit_common import ViTConfigOrLayer
from pali_pax.convert.vit_hf import load_vit_hf, vit_config_from_hf
from pali_pax.core.errors import FileFormatError
from pali_pax.layers.vit import VisionTransformer

__all__ = [
  'detect_format',
  'load_vit',
  'load_vit_big_vision',
  'load_vit_hf',
  'vit_config_from_big_vision',
  'vit_config_from_checkpoint',
  'vit_config_from_hf',
]

# Files that stand for the HF directory holding them.
_HF_FILES = (hf_files.CONFIG, 'model.safetensors', 'pytorch_model.bin')


def detect_format(path: str | os.PathLike) -> tuple[str, str]:
  """('big_vision', file) for an .npz, ('hf', directory) for a HF directory or a file in it.

  Raises:
    FileFormatError: neither.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    return 'hf', path
  if path.endswith('.npz'):
    return 'big_vision', path
  name = os.path.basename(path)
  if name in _HF_FILES or name.endswith(('.safetensors', '.safetensors.index.json')):
    return 'hf', os.path.dirname(path) or '.'
  raise FileFormatError(
    f'{path}: not a ViT checkpoint this loader knows (a big_vision .npz file or a '
    'Hugging Face directory with config.json and model.safetensors)'
  )


def vit_config_from_checkpoint(path: str | os.PathLike) -> pax_fiddle.Config[VisionTransformer]:
  """The `VisionTransformer` config (learned posemb, scanned) whose sizes a checkpoint gives."""
  fmt, where = detect_format(path)
  return vit_config_from_hf(where) if fmt == 'hf' else vit_config_from_big_vision(where)


def load_vit(
  path: str | os.PathLike,
  cfg_or_layer: ViTConfigOrLayer,
  image_size: int | None = None,
) -> dict[str, Any]:
  """Loads ViT weights, detecting the format, into a VisionTransformer params tree.

  Args:
    path: a big_vision `.npz` file, or a Hugging Face directory (or a file in
      it) with config.json + model.safetensors / pytorch_model.bin.
    cfg_or_layer: the target VisionTransformer (config or layer).
    image_size: optional new resolution; resamples the position embedding.

  Returns:
    Nested dict of float32 numpy arrays (the layer's `params` collection).

  Raises:
    CheckpointMismatchError: missing, unexpected or mis-shaped tensors (named).
    FileFormatError: unknown format, or a file that cannot be parsed (named).
  """
  fmt, where = detect_format(path)
  load = load_vit_hf if fmt == 'hf' else load_vit_big_vision
  return load(where, cfg_or_layer, image_size=image_size)
