"""T5X mT5 checkpoint (legacy msgpack + tensorstore format) -> Pax params.

A T5X checkpoint directory `checkpoint_<step>/` holds a msgpack file named
`checkpoint` (flax serialization) with `{'version': 3, 'optimizer': {'target':
params, 'state': optimizer state}}` (version 0: the optimizer dict at top
level). Small arrays are stored inline; large ones are replaced by a
tensorstore spec, e.g. `{'driver': 'zarr', 'kvstore': {'driver': 'file',
'path': 'target.encoder.layers_0.attention.query.kernel'}, 'metadata': ...}`,
whose path is relative to the checkpoint directory (older tensorstore: 'path'
at the top of the spec; 'gcs' kvstores are read from the local directory).

Parameter names (t5x/examples/t5/network.py, T5.1.1 / mT5), kernels [in, out]:

    token_embedder/embedding                                 [V, D]
    {encoder,decoder}/relpos_bias/rel_embedding              [N, K]
    encoder/layers_i/pre_attention_layer_norm/scale          [D]
    encoder/layers_i/attention/{query,key,value}/kernel      [D, N*H]
    encoder/layers_i/attention/out/kernel                    [N*H, D]
    decoder/layers_i/pre_self_attention_layer_norm/scale, self_attention/...
    decoder/layers_i/pre_cross_attention_layer_norm/scale, encoder_decoder_attention/...
    {encoder,decoder}/layers_i/pre_mlp_layer_norm/scale
    {encoder,decoder}/layers_i/mlp/{wi_0,wi_1}/kernel        [D, F]; mlp/wo/kernel [F, D]
    encoder/encoder_norm/scale, decoder/decoder_norm/scale   [D]
    decoder/logits_dense/kernel                              [D, V]
"""

import copy
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import serialization
from praxis import pax_fiddle

from pali_pax.convert import mt5_common as common
from pali_pax.layers import mt5

CheckpointMismatchError = common.CheckpointMismatchError

_ATTN = re.compile(
  r'(encoder|decoder)/layers_(\d+)/(attention|self_attention|encoder_decoder_attention)/(query|key|value|out)/kernel'
)
_NORM = re.compile(r'(encoder|decoder)/layers_(\d+)/(pre_\w+_layer_norm)/scale')
_MLP = re.compile(r'(encoder|decoder)/layers_(\d+)/mlp/(wi_0|wi_1|wo)/kernel')
_RELBIAS = re.compile(r'(encoder|decoder)/relpos_bias/rel_embedding')
_FINAL = {'encoder/encoder_norm/scale': 'encoder', 'decoder/decoder_norm/scale': 'decoder'}
_ATTN_KIND = {
  ('encoder', 'attention'): False,
  ('decoder', 'self_attention'): False,
  ('decoder', 'encoder_decoder_attention'): True,
}
_NORMS = {
  ('encoder', 'pre_attention_layer_norm'): common.SELF_NORM,
  ('decoder', 'pre_self_attention_layer_norm'): common.SELF_NORM,
  ('decoder', 'pre_cross_attention_layer_norm'): common.CROSS_NORM,
  ('encoder', 'pre_mlp_layer_norm'): common.FF_NORM,
  ('decoder', 'pre_mlp_layer_norm'): common.FF_NORM,
}
_PROJ = {'query': 'query', 'key': 'key', 'value': 'value', 'out': 'post'}
EMBEDDING = 'token_embedder/embedding'
LOGITS = 'decoder/logits_dense/kernel'


def find_checkpoint_file(path: str) -> str:
  """The msgpack `checkpoint` file for a file, step dir or model dir (latest step)."""
  if os.path.isfile(path):
    return path
  if os.path.isfile(os.path.join(path, 'checkpoint')):
    return os.path.join(path, 'checkpoint')
  steps = []
  if os.path.isdir(path):
    for entry in os.listdir(path):
      m = re.fullmatch(r'checkpoint_(\d+)', entry)
      if m and os.path.isfile(os.path.join(path, entry, 'checkpoint')):
        steps.append(int(m[1]))
  if not steps:
    raise FileNotFoundError(f'{path}: not a T5X checkpoint (no msgpack `checkpoint` file)')
  return os.path.join(path, f'checkpoint_{max(steps)}', 'checkpoint')


def _is_ts_spec(value: Any) -> bool:
  return isinstance(value, Mapping) and 'driver' in value


def _flatten(node: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  flat = {}
  for key, value in node.items():
    path = f'{prefix}/{key}' if prefix else str(key)
    if isinstance(value, Mapping) and not _is_ts_spec(value):
      flat.update(_flatten(value, path))
    else:
      flat[path] = value
  return flat


def read_t5x_target(path: str) -> tuple[dict[str, Any], str]:
  """Flat {name: ndarray or tensorstore spec dict} of the `target` params.

  Returns:
    (flat target, checkpoint directory the spec paths are relative to).
  """
  ckpt_file = find_checkpoint_file(path)
  with open(ckpt_file, 'rb') as f:
    contents = serialization.msgpack_restore(f.read())
  state = contents if contents.get('version', 0) == 0 else contents.get('optimizer', {})
  if 'target' not in state:
    raise CheckpointMismatchError(f'{ckpt_file}: no optimizer target (model parameters) found')
  return _flatten(state['target']), os.path.dirname(ckpt_file)


def read_ts_array(spec: Mapping[str, Any], ckpt_dir: str) -> np.ndarray:
  """Reads one tensorstore-backed array written by T5X."""
  import tensorstore as ts

  spec = copy.deepcopy(dict(spec))
  metadata = spec.get('metadata')
  if isinstance(metadata, dict):
    # Chunking/compression are read from the stored .zarray, not imposed.
    metadata.pop('chunks', None)
    metadata.pop('compressor', None)
  kvstore = dict(spec.get('kvstore') or {})
  rel = kvstore.pop('path', None) or spec.pop('path', None)
  if rel is None:
    raise CheckpointMismatchError(f'{ckpt_dir}: tensorstore spec without a path: {spec}')
  spec.pop('path', None)
  spec['kvstore'] = {'driver': 'file', 'path': os.path.join(ckpt_dir, rel)}
  return np.asarray(ts.open(spec, open=True, read=True).result().read().result())


def _mapper(cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder]):
  heads = common.heads_shape(cfg)

  def map_one(name: str, array: np.ndarray) -> tuple[str, np.ndarray]:
    if name == EMBEDDING:
      return common.EMBEDDING, array
    if name == LOGITS:
      return common.LM_HEAD, array
    if name in _FINAL:
      return common.final_norm_path(_FINAL[name]), array
    if m := _RELBIAS.fullmatch(name):
      return common.relative_bias_path(m[1]), np.transpose(array)
    if (m := _ATTN.fullmatch(name)) and (m[1], m[3]) in _ATTN_KIND:
      cross = _ATTN_KIND[(m[1], m[3])]
      w = np.transpose(array) if m[4] == 'out' else array
      path = common.attention_path(m[1], m[2], cross, _PROJ[m[4]])
      return path, common.reshape_if_possible(w, heads)
    if (m := _NORM.fullmatch(name)) and (m[1], m[3]) in _NORMS:
      return common.block_path(m[1], m[2], _NORMS[(m[1], m[3])]), array
    if m := _MLP.fullmatch(name):
      return common.block_path(m[1], m[2], common.FF_WEIGHTS[m[3]]), array
    return name, array  # unknown: reported as unexpected

  return map_one


def load_mt5_t5x(
  path: str,
  cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder],
  progress: bool = True,
) -> dict[str, Any]:
  """Converts a T5X mT5 checkpoint into the `params` tree of `cfg`.

  Args:
    path: the `checkpoint` msgpack file, a `checkpoint_<step>` directory, or a
      model directory (latest step is used).
    cfg: target `Mt5EncoderDecoder` config.
    progress: show a tqdm progress bar over tensors.

  Returns:
    Nested dict of float32 numpy arrays, exactly the layer's `params` tree.

  Raises:
    CheckpointMismatchError: vocabulary size differs from the config, or
      missing / unexpected / mis-shaped tensors.
  """
  target, ckpt_dir = read_t5x_target(path)

  def read(name: str) -> np.ndarray:
    value = target[name]
    array = read_ts_array(value, ckpt_dir) if _is_ts_spec(value) else np.asarray(value)
    if name in (EMBEDDING, LOGITS) and array.ndim == 2:
      common.check_vocab(array.shape[0 if name == EMBEDDING else 1], cfg, path, name)
    return array

  loaded, names = common.convert_all(
    sorted(target), read, _mapper(cfg), path, 'mT5 (T5X)', progress
  )
  return common.finish(cfg, loaded, path, names)
