"""Tensors of a Hugging Face model directory (what `save_pretrained` writes).

`read_hf_tensors` looks for, in the order transformers does:

    model.safetensors
    model.safetensors.index.json  + the model-XXXXX-of-XXXXX.safetensors it names
    pytorch_model.bin                                        (needs torch)
    pytorch_model.bin.index.json  + the .bin shards it names (needs torch)

safetensors.numpy has no bfloat16, so a file holding bf16 tensors is read with
a small reader of the (simple) safetensors format instead, giving ml_dtypes
bfloat16 arrays memory-mapped from the file. torch is optional: without it a
.bin checkpoint is an ImportError that names the file and says to convert it
to safetensors.
"""

import json
import os

import numpy as np

from pali_pax.convert.tree import CheckpointMismatchError

_SAFETENSORS = 'model.safetensors'
_TORCH_BIN = 'pytorch_model.bin'
_INDEX = '.index.json'


def torch_available() -> bool:
  """Whether `import torch` works."""
  try:
    import torch  # noqa: F401
  except ImportError:
    return False
  return True


def _safetensors_dtypes() -> dict[str, np.dtype]:
  import ml_dtypes

  return {
    'BF16': ml_dtypes.bfloat16,
    'F16': np.float16,
    'F32': np.float32,
    'F64': np.float64,
    'I8': np.int8,
    'I16': np.int16,
    'I32': np.int32,
    'I64': np.int64,
    'U8': np.uint8,
    'BOOL': np.bool_,
  }


def _read_safetensors_header(file: str) -> dict[str, np.ndarray]:
  """All tensors of one .safetensors file, parsed directly (8-byte length, JSON, data)."""
  dtypes = _safetensors_dtypes()
  with open(file, 'rb') as f:
    n = int.from_bytes(f.read(8), 'little')
    header = json.loads(f.read(n))
  data = np.memmap(file, dtype=np.uint8, mode='r', offset=8 + n)
  out = {}
  for name, spec in header.items():
    if name == '__metadata__':
      continue
    if spec['dtype'] not in dtypes:
      raise CheckpointMismatchError(f'{file}: tensor {name} has unsupported dtype {spec["dtype"]}')
    start, end = spec['data_offsets']
    out[name] = np.frombuffer(data[start:end], dtype=dtypes[spec['dtype']]).reshape(spec['shape'])
  return out


def _load_safetensors(file: str) -> dict[str, np.ndarray]:
  from safetensors.numpy import load_file

  try:
    return load_file(file)
  except (KeyError, TypeError, ValueError):
    return _read_safetensors_header(file)  # bfloat16: numpy's safetensors cannot hold it


def _load_torch_bin(file: str) -> dict[str, np.ndarray]:
  if not torch_available():
    raise ImportError(
      f'{file}: reading {os.path.basename(file)} needs PyTorch (torch), which is not installed; '
      'convert the checkpoint to safetensors first (e.g. `<Model>.from_pretrained(d)'
      '.save_pretrained(d, safe_serialization=True)` where torch is available)'
    )
  import torch

  state = torch.load(file, map_location='cpu', weights_only=True)
  return {k: v.float().numpy() for k, v in state.items()}


def read_hf_tensors(directory: str) -> dict[str, np.ndarray]:
  """All tensors of a HF model directory, by HF name (numpy; bfloat16 as ml_dtypes).

  Raises:
    FileNotFoundError: no weights file in `directory`.
    ImportError: the weights are pytorch_model.bin and torch is not installed.
    CheckpointMismatchError: a safetensors tensor of an unsupported dtype.
  """
  for weights, loader in ((_SAFETENSORS, _load_safetensors), (_TORCH_BIN, _load_torch_bin)):
    single = os.path.join(directory, weights)
    if os.path.isfile(single):
      return loader(single)
    index = single + _INDEX
    if os.path.isfile(index):
      with open(index) as f:
        shards = sorted(set(json.load(f)['weight_map'].values()))
      tensors: dict[str, np.ndarray] = {}
      for shard in shards:
        tensors.update(loader(os.path.join(directory, shard)))
      return tensors
  raise FileNotFoundError(
    f'{directory}: no {_SAFETENSORS}, {_SAFETENSORS}{_INDEX}, {_TORCH_BIN} or {_TORCH_BIN}{_INDEX}'
  )
