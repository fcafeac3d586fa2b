"""Files of a Hugging Face model directory (what `save_pretrained` writes).

`read_hf_tensors` looks for the weights in the order transformers does:

    model.safetensors
    model.safetensors.index.json  + the model-XXXXX-of-XXXXX.safetensors it names
    pytorch_model.bin                                        (needs torch)
    pytorch_model.bin.index.json  + the .bin shards it names (needs torch)

safetensors files are read with `safetensors.numpy` (memory-mapped; bfloat16
comes back as ml_dtypes.bfloat16). torch is optional: without it a .bin
checkpoint is an ImportError that names the file and says to convert it to
safetensors. `read_json` reads config.json and the index files. `write_hf_dir`
writes what `save_pretrained` would: config.json + one model.safetensors.

A file that cannot be parsed (truncated, bad header, not JSON, ...) is a
`FileFormatError` naming it.
"""

import json
import os
import pickle
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from pali_pax.core import errors

_SAFETENSORS = 'model.safetensors'
_TORCH_BIN = 'pytorch_model.bin'
_INDEX = '.index.json'
CONFIG = 'config.json'


def torch_available() -> bool:
  """Whether `import torch` works."""
  try:
    import torch  # noqa: F401
  except ImportError:
    return False
  return True


def read_json(path: str, what: str = 'JSON file') -> dict[str, Any]:
  """A JSON object from `path`.

  Raises:
    FileNotFoundError: no file at `path`.
    FileFormatError: not JSON, or not a JSON object (names the file).
  """
  with errors.parsing(path, what):
    with open(path, encoding='utf-8') as f:
      value = json.load(f)
  if not isinstance(value, dict):
    raise errors.FileFormatError(
      f'{path}: not a valid {what} (a {type(value).__name__}, not an object)'
    )
  return value


def read_config(directory: str) -> dict[str, Any]:
  """config.json of a HF model directory."""
  path = os.path.join(directory, CONFIG)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{directory}: no {CONFIG} (not a Hugging Face model directory)')
  return read_json(path, f'Hugging Face {CONFIG}')


def _load_safetensors(file: str) -> dict[str, np.ndarray]:
  with errors.parsing(file, 'safetensors file', (SafetensorError,)):
    return load_file(file)


def _load_torch_bin(file: str) -> dict[str, np.ndarray]:
  if not torch_available():
    raise ImportError(
      f'{file}: reading {os.path.basename(file)} needs PyTorch (torch), which is not installed; '
      'convert the checkpoint to safetensors first (e.g. `<Model>.from_pretrained(d)'
      '.save_pretrained(d, safe_serialization=True)` where torch is available)'
    )
  import torch

  # torch.load raises RuntimeError on a damaged zip archive, UnpicklingError on other bytes.
  with errors.parsing(file, 'PyTorch checkpoint', (RuntimeError, pickle.UnpicklingError)):
    state = torch.load(file, map_location='cpu', weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}


def _shards(index: str) -> list[str]:
  """The weight files a `*.index.json` names (its `weight_map` values)."""
  weight_map = read_json(index, 'Hugging Face weights index').get('weight_map')
  if not isinstance(weight_map, dict) or not all(
    isinstance(v, str) and v == os.path.basename(v) for v in weight_map.values()
  ):
    raise errors.FileFormatError(
      f'{index}: no "weight_map" of tensor name -> file name in the same directory'
    )
  return sorted(set(weight_map.values()))


def read_hf_tensors(directory: str) -> dict[str, np.ndarray]:
  """All tensors of a HF model directory, by HF name (numpy; bfloat16 as ml_dtypes).

  Raises:
    FileNotFoundError: no weights file in `directory`.
    ImportError: the weights are pytorch_model.bin and torch is not installed.
    FileFormatError: a weights or index file cannot be parsed (named).
  """
  for weights, loader in ((_SAFETENSORS, _load_safetensors), (_TORCH_BIN, _load_torch_bin)):
    single = os.path.join(directory, weights)
    if os.path.isfile(single):
      return loader(single)
    index = single + _INDEX
    if os.path.isfile(index):
      tensors: dict[str, np.ndarray] = {}
      for shard in _shards(index):
        tensors.update(loader(os.path.join(directory, shard)))
      return tensors
  raise FileNotFoundError(
    f'{directory}: no {_SAFETENSORS}, {_SAFETENSORS}{_INDEX}, {_TORCH_BIN} or {_TORCH_BIN}{_INDEX}'
  )


def positive(config: dict[str, Any], key: str, source: str, kind: type = int) -> Any:
  """`config[key]` as a positive `kind` (int, or float accepting ints).

  Raises:
    FileFormatError: missing, not a number of that kind, or <= 0 (names `source` and `key`).
  """
  value = config.get(key)
  kinds = (int, float) if kind is float else (int,)
  if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
    raise errors.FileFormatError(f'{source}: {key}={value!r}, expected a positive {kind.__name__}')
  return kind(value)


def write_hf_dir(directory: str, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> str:
  """Writes config.json and model.safetensors (float32, `format: pt` as transformers wants).

  Returns:
    `directory` (created if needed).
  """
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, CONFIG), 'w', encoding='utf-8') as f:
    json.dump(config, f, indent=2, sort_keys=True)
  arrays = {k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}
  save_file(arrays, os.path.join(directory, _SAFETENSORS), metadata={'format': 'pt'})
  return directory
