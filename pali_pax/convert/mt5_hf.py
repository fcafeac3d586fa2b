"""Hugging Face mT5 checkpoint (`MT5ForConditionalGeneration` directory) -> Pax params.

A HF directory holds config.json and either model.safetensors (or sharded
model-XXXXX-of-XXXXX.safetensors + model.safetensors.index.json) or
pytorch_model.bin; the latter needs torch, otherwise convert it to
safetensors first (`hf_files.read_hf_tensors` reads them). Tensor names and
layouts (torch `Linear.weight` is [out, in]):

    shared.weight                                      [V, D]  -> token_emb/emb_var
    lm_head.weight                                     [V, D]  -> softmax/.../w (transposed)
    {enc,dec}oder.block.0.layer.0.SelfAttention.relative_attention_bias.weight [K, N]
    {enc,dec}oder.block.i.layer.0.SelfAttention.{q,k,v}.weight  [N*H, D]
    {enc,dec}oder.block.i.layer.0.SelfAttention.o.weight        [D, N*H]
    decoder.block.i.layer.1.EncDecAttention.{q,k,v,o}.weight
    {enc,dec}oder.block.i.layer.j.layer_norm.weight             [D]
    {enc,dec}oder.block.i.layer.{1,2}.DenseReluDense.{wi_0,wi_1}.weight [F, D], wo [D, F]
    {enc,dec}oder.final_layer_norm.weight                       [D]
"""

import os
import re
from typing import Any

import numpy as np
from praxis import pax_fiddle

from pali_pax import errors
from pali_pax.convert import hf_files
from pali_pax.convert import mt5_common as common
from pali_pax.fiddle_configs import mt5 as mt5_configs
from pali_pax.layers import mt5

_ATTN = re.compile(
  r'(encoder|decoder)\.block\.(\d+)\.layer\.(\d+)\.(SelfAttention|EncDecAttention)\.([qkvo])\.weight'
)
_RELBIAS = re.compile(
  r'(encoder|decoder)\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.weight'
)
_NORM = re.compile(r'(encoder|decoder)\.block\.(\d+)\.layer\.(\d+)\.layer_norm\.weight')
_FF = re.compile(
  r'(encoder|decoder)\.block\.(\d+)\.layer\.(\d+)\.DenseReluDense\.(wi_0|wi_1|wo)\.weight'
)
_FINAL = re.compile(r'(encoder|decoder)\.final_layer_norm\.weight')
_ALIASES = ('encoder.embed_tokens.weight', 'decoder.embed_tokens.weight')
_PROJ = {'q': 'query', 'k': 'key', 'v': 'value', 'o': 'post'}
# T5Config defaults for fields `save_pretrained` may omit.
_HF_DEFAULTS = {
  'relative_attention_num_buckets': 32,
  'relative_attention_max_distance': 128,
  'layer_norm_epsilon': 1e-6,
}
# config.json size -> `mt5_config` argument.
_HF_SIZES = {
  'vocab_size': 'vocab_size',
  'relative_attention_num_buckets': 'relative_attention_num_buckets',
  'relative_attention_max_distance': 'relative_attention_max_distance',
  'd_model': 'model_dims',
  'num_layers': 'num_encoder_layers',
  'num_decoder_layers': 'num_decoder_layers',
  'd_ff': 'hidden_dims',
  'num_heads': 'num_heads',
  'd_kv': 'dim_per_head',
}


def mt5_config_from_hf(path: str, **kwargs: Any) -> pax_fiddle.Config[mt5.Mt5EncoderDecoder]:
  """`Mt5EncoderDecoder` config from a HF config.json (directory or file path).

  Args:
    path: HF model directory (or its config.json).
    **kwargs: extra `mt5_config` arguments (e.g. name, dropout_prob).

  Raises:
    CheckpointMismatchError: the config is not a T5.1.1-style (gated-GELU,
      untied) model.
    FileFormatError: config.json is not JSON, or a size is missing or not a
      positive number (names the file and the field).
  """
  directory = os.path.dirname(path) if path.endswith('.json') else path
  source = os.path.join(directory, hf_files.CONFIG)
  hf = {**_HF_DEFAULTS, **hf_files.read_config(directory)}
  ff = hf.get('feed_forward_proj', 'relu')
  if ff != 'gated-gelu':
    raise errors.CheckpointMismatchError(
      f'{source}: feed_forward_proj={ff!r}; only mT5/T5.1.1 gated-gelu is supported'
    )
  if hf.get('tie_word_embeddings', False):
    raise errors.CheckpointMismatchError(
      f'{source}: tie_word_embeddings=True (T5 1.0 style) is not supported'
    )
  if hf.get('num_decoder_layers') is None:
    hf['num_decoder_layers'] = hf.get('num_layers')
  dims = {ours: hf_files.positive(hf, key, source) for key, ours in _HF_SIZES.items()}
  kwargs.setdefault('dropout_prob', 0.0)  # inference default; HF's dropout_rate is for training
  return mt5_configs.mt5_config(
    'small',
    layer_norm_epsilon=hf_files.positive(hf, 'layer_norm_epsilon', source, float),
    **dims,
    **kwargs,
  )


def _mapper(cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder]):
  heads = common.heads_shape(cfg)
  # Which sub-layer a block's layer.<j> is: encoder 0 attn, 1 ff; decoder 0, 1 cross, 2 ff.
  norms = {'encoder': {0: common.SELF_NORM, 1: common.FF_NORM}}
  norms['decoder'] = {0: common.SELF_NORM, 1: common.CROSS_NORM, 2: common.FF_NORM}
  ff_layer = {'encoder': 1, 'decoder': 2}

  def map_one(name: str, array: np.ndarray) -> tuple[str, np.ndarray] | None:
    if name == 'shared.weight':
      return common.EMBEDDING, array
    if name == 'lm_head.weight':
      return common.LM_HEAD, np.transpose(array)
    if m := _RELBIAS.fullmatch(name):
      return common.relative_bias_path(m[1]), array
    if m := _ATTN.fullmatch(name):
      stack, block, layer, kind, proj = m.groups()
      cross = kind == 'EncDecAttention'
      if (layer, cross) in (('0', False), ('1', True)) and (stack == 'decoder' or not cross):
        w = array if proj == 'o' else np.transpose(array)
        path = common.attention_path(stack, block, cross, _PROJ[proj])
        return path, common.reshape_if_possible(w, heads)
    if (m := _NORM.fullmatch(name)) and int(m[3]) in norms[m[1]]:
      return common.block_path(m[1], m[2], norms[m[1]][int(m[3])]), array
    if (m := _FF.fullmatch(name)) and int(m[3]) == ff_layer[m[1]]:
      return common.block_path(m[1], m[2], common.FF_WEIGHTS[m[4]]), np.transpose(array)
    if m := _FINAL.fullmatch(name):
      return common.final_norm_path(m[1]), array
    return name, array  # unknown: reported as unexpected

  return map_one


def load_mt5_hf(
  path: str,
  cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder] | None = None,
  progress: bool = True,
) -> dict[str, Any]:
  """Converts a HF mT5 directory into the `params` tree of `cfg`.

  Args:
    path: HF model directory.
    cfg: target config; default `mt5_config_from_hf(path)`.
    progress: show a tqdm progress bar over tensors.

  Returns:
    Nested dict of float32 numpy arrays, exactly the layer's `params` tree.

  Raises:
    CheckpointMismatchError: vocabulary size differs from the config, untied
      input embeddings, or missing / unexpected / mis-shaped tensors.
  """
  if cfg is None:
    cfg = mt5_config_from_hf(path)
  tensors = hf_files.read_hf_tensors(path)
  if 'shared.weight' not in tensors and _ALIASES[0] in tensors:
    tensors['shared.weight'] = tensors.pop(_ALIASES[0])
  if 'shared.weight' in tensors:
    common.check_vocab(tensors['shared.weight'].shape[0], cfg, path, 'shared.weight')
    for alias in _ALIASES:
      if alias in tensors and not np.array_equal(tensors.pop(alias), tensors['shared.weight']):
        raise errors.CheckpointMismatchError(
          f'{path}: {alias} differs from shared.weight; mT5 shares one input embedding'
        )
  if 'lm_head.weight' in tensors:
    common.check_vocab(tensors['lm_head.weight'].shape[0], cfg, path, 'lm_head.weight')
  loaded, names = common.convert_all(
    sorted(tensors), tensors.__getitem__, _mapper(cfg), path, 'mT5 (HF)', progress
  )
  return common.finish(cfg, loaded, path, names)
