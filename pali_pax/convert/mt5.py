"""Loads a public mT5 checkpoint (HF or T5X format) into `Mt5EncoderDecoder` params.

from pali_pax.convert.mt5 import load_mt5, mt5_config_from_hf
cfg = mt5_config_from_hf('/ckpt/mt5-large')           # or fiddle_configs.mt5.mt5_config
params = load_mt5('/ckpt/mt5-large', cfg)             # HF directory
params = load_mt5('/ckpt/mt5_large/checkpoint_1000000', cfg)   # T5X
logits = model.apply({'params': params}, ...)
"""

import os
from typing import Any

from praxis import pax_fiddle

from pali_pax.convert.mt5_hf import load_mt5_hf, mt5_config_from_hf
from pali_pax.convert.mt5_t5x import find_checkpoint_file, load_mt5_t5x, mt5_config_from_t5x
from pali_pax.core import errors
from pali_pax.core.errors import FileFormatError
from pali_pax.layers import mt5

__all__ = [
  'detect_format',
  'load_mt5',
  'load_mt5_hf',
  'load_mt5_t5x',
  'mt5_config_from_checkpoint',
  'mt5_config_from_hf',
  'mt5_config_from_t5x',
]

_HF_FILES = (
  'model.safetensors',
  'model.safetensors.index.json',
  'pytorch_model.bin',
  'pytorch_model.bin.index.json',
)


def detect_format(path: str) -> str:
  """'hf' (config.json + weights) or 't5x' (msgpack `checkpoint`); else FileFormatError."""
  if os.path.isdir(path) and os.path.isfile(os.path.join(path, 'config.json')):
    if any(os.path.isfile(os.path.join(path, f)) for f in _HF_FILES):
      return 'hf'
  try:
    find_checkpoint_file(path)
    return 't5x'
  except FileNotFoundError:
    pass
  raise FileFormatError(
    f'{path}: neither a Hugging Face model directory (config.json + model.safetensors / '
    'pytorch_model.bin) nor a T5X checkpoint (msgpack `checkpoint` file)'
  )


def mt5_config_from_checkpoint(path: str) -> pax_fiddle.Config[mt5.Mt5EncoderDecoder]:
  """The `Mt5EncoderDecoder` config whose sizes a checkpoint of either format gives."""
  return mt5_config_from_hf(path) if detect_format(path) == 'hf' else mt5_config_from_t5x(path)


def load_mt5(
  path: str,
  cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder] | None = None,
  progress: bool = True,
) -> dict[str, Any]:
  """Converts an mT5 checkpoint of either format into the `params` tree of `cfg`.

  Args:
    path: HF model directory, or T5X checkpoint file / step dir / model dir.
    cfg: target config; may be None only for HF directories (read from
      config.json).
    progress: show a tqdm progress bar over tensors.

  Returns:
    Nested dict of float32 numpy arrays with exactly the structure of the
    layer's `params` collection.

  Raises:
    CheckpointMismatchError: vocabulary mismatch or missing / unexpected /
      mis-shaped tensors (named).
    FileFormatError: unknown format, or a file that cannot be parsed (named).
    ValueError: T5X without `cfg`.
  """
  fmt = detect_format(path)
  if fmt == 'hf':
    return load_mt5_hf(path, cfg, progress=progress)
  if cfg is None:
    raise errors.InputValidationError(f'{path}: a T5X checkpoint carries no model config; pass cfg')
  return load_mt5_t5x(path, cfg, progress=progress)
