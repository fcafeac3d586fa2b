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
from flax import serialization, traverse_util
from praxis import pax_fiddle

from pali_pax.convert import mt5_common as common
from pali_pax.core import errors
from pali_pax.fiddle_configs import mt5 as mt5_configs
from pali_pax.layers import mt5

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


def read_t5x_target(path: str) -> tuple[dict[str, Any], str]:
  """Flat {name: ndarray or tensorstore spec dict} of the `target` params.

  Returns:
    (flat target, checkpoint directory the spec paths are relative to).

  Raises:
    FileFormatError: the `checkpoint` file is not a T5X msgpack checkpoint.
  """
  ckpt_file = find_checkpoint_file(path)
  with errors.parsing(ckpt_file, 'T5X msgpack checkpoint'), open(ckpt_file, 'rb') as f:
    contents = serialization.msgpack_restore(f.read())
  state = contents
  if isinstance(contents, dict) and contents.get('version', 0) != 0:
    state = contents.get('optimizer')
  if not isinstance(state, dict) or not isinstance(state.get('target'), dict):
    raise errors.FileFormatError(
      f'{ckpt_file}: not a valid T5X msgpack checkpoint (no optimizer target dict)'
    )
  flat = traverse_util.flatten_dict(state['target'], sep='/', is_leaf=lambda _, x: _is_ts_spec(x))
  return flat, os.path.dirname(ckpt_file)


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
  if not isinstance(rel, str):
    raise errors.FileFormatError(f'{ckpt_dir}: tensorstore spec without a path: {spec}')
  spec.pop('path', None)
  spec['kvstore'] = {'driver': 'file', 'path': os.path.join(ckpt_dir, rel)}
  with errors.parsing(os.path.join(ckpt_dir, rel), 'T5X tensorstore array'):
    return np.asarray(ts.open(spec, open=True, read=True).result().read().result())


def _shape(value: Any, ckpt_dir: str) -> tuple[int, ...]:
  """Shape of an inline array or a tensorstore spec (read from its metadata if present)."""
  if _is_ts_spec(value):
    shape = (value.get('metadata') or {}).get('shape')
    return tuple(shape) if shape is not None else read_ts_array(value, ckpt_dir).shape
  return np.shape(value)


def mt5_config_from_t5x(path: str) -> pax_fiddle.Config[mt5.Mt5EncoderDecoder]:
  """`Mt5EncoderDecoder` config whose sizes are read off a T5X checkpoint's arrays.

  vocab / d_model from token_embedder/embedding [V, D], d_ff from mlp/wi_0
  [D, F], heads and buckets from relpos_bias/rel_embedding [H, K], layers from
  the `layers_i` keys, d_kv = query width / heads. The max distance is not
  stored; mT5's 128 is assumed.
  """
  target, ckpt_dir = read_t5x_target(path)

  def shape(name: str, ndim: int) -> tuple[int, ...]:
    if name not in target:
      raise errors.CheckpointMismatchError(f'{path}: T5X checkpoint has no {name}')
    found = _shape(target[name], ckpt_dir)
    if len(found) != ndim:
      raise errors.CheckpointMismatchError(f'{path}: {name} has shape {found}, expected {ndim}-D')
    return found

  def layers(stack: str) -> int:
    found = {int(m[1]) for k in target if (m := re.match(rf'{stack}/layers_(\d+)/', k))}
    return max(found) + 1 if found else 0

  vocab, d_model = shape(EMBEDDING, 2)
  heads, buckets = shape('encoder/relpos_bias/rel_embedding', 2)
  return mt5_configs.mt5_config(
    'small',
    vocab_size=vocab,
    relative_attention_num_buckets=buckets,
    model_dims=d_model,
    num_encoder_layers=layers('encoder'),
    num_decoder_layers=layers('decoder'),
    hidden_dims=shape('encoder/layers_0/mlp/wi_0/kernel', 2)[1],
    num_heads=heads,
    dim_per_head=shape('encoder/layers_0/attention/query/kernel', 2)[1] // heads,
  )


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
