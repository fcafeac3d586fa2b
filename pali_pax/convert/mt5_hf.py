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
from typing import Any

import numpy as np
from praxis import pax_fiddle

from pali_pax.convert import hf_files
from pali_pax.convert import mt5_common as common
from pali_pax.core import errors
from pali_pax.fiddle_configs import mt5 as mt5_configs
from pali_pax.layers import mt5

_ALIASES = ('encoder.embed_tokens.weight', 'decoder.embed_tokens.weight')
_PROJ = {'q': 'query', 'k': 'key', 'v': 'value', 'o': 'post'}
# T5Config defaults for fields `save_pretrained` may omit.
_HF_DEFAULTS = {
  'relative_attention_num_buckets': 32,
  'relative_attention_max_distance': 128,
  'layer_norm_epsilon': 1e-6,
}
# config.json size -> `mt5_config` argument.
CONFIG_SIZES = {
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
  dims = {ours: hf_files.positive(hf, key, source) for key, ours in CONFIG_SIZES.items()}
  kwargs.setdefault('dropout_prob', 0.0)  # inference default; HF's dropout_rate is for training
  return mt5_configs.mt5_config(
    'small',
    layer_norm_epsilon=hf_files.positive(hf, 'layer_norm_epsilon', source, float),
    **dims,
    **kwargs,
  )


# How an HF tensor becomes its Pax tensor; `to_pax` and `to_hf` are inverses.
SAME = 'same'
TRANSPOSE = 'transpose'  # torch Linear [out, in] <-> Pax [in, out]
HEADS_IN = 'heads_in'  # q/k/v [N*H, D] <-> [D, N, H]
HEADS_OUT = 'heads_out'  # o [D, N*H] <-> [D, N, H]
# Sub-layers of a block: (HF layer index, HF module, cross-attention).
_ATTENTIONS = {
  'encoder': ((0, 'SelfAttention', False),),
  'decoder': ((0, 'SelfAttention', False), (1, 'EncDecAttention', True)),
}
_NORMS = {
  'encoder': {0: common.SELF_NORM, 1: common.FF_NORM},
  'decoder': {0: common.SELF_NORM, 1: common.CROSS_NORM, 2: common.FF_NORM},
}
_FF_LAYER = {'encoder': 1, 'decoder': 2}


def hf_names(cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder]) -> dict[str, tuple[str, str]]:
  """{HF tensor name: (Pax per-layer path, layout)} of every tensor of `cfg`'s model.

  The one name mapping of the HF format: the reader follows it forwards, the
  exporter (`export_mt5`) backwards.
  """
  out = {'shared.weight': (common.EMBEDDING, SAME), 'lm_head.weight': (common.LM_HEAD, TRANSPOSE)}
  layers = {'encoder': cfg.num_encoder_layers, 'decoder': cfg.num_decoder_layers}
  for stack, n in layers.items():
    relbias = f'{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight'
    out[relbias] = (common.relative_bias_path(stack), SAME)
    out[f'{stack}.final_layer_norm.weight'] = (common.final_norm_path(stack), SAME)
    for i in range(n):
      block = f'{stack}.block.{i}.layer'
      for layer, module, cross in _ATTENTIONS[stack]:
        for hf, proj in _PROJ.items():
          path = common.attention_path(stack, i, cross, proj)
          out[f'{block}.{layer}.{module}.{hf}.weight'] = (
            path,
            HEADS_OUT if hf == 'o' else HEADS_IN,
          )
      for layer, norm in _NORMS[stack].items():
        out[f'{block}.{layer}.layer_norm.weight'] = (common.block_path(stack, i, norm), SAME)
      for hf, sub in common.FF_WEIGHTS.items():
        name = f'{block}.{_FF_LAYER[stack]}.DenseReluDense.{hf}.weight'
        out[name] = (common.block_path(stack, i, sub), TRANSPOSE)
  return out


def to_pax(array: np.ndarray, layout: str, heads: tuple[int, int, int]) -> np.ndarray:
  """HF tensor -> Pax layout (left unreshaped when sizes disagree: fill_tree names it)."""
  if layout == TRANSPOSE:
    return np.transpose(array)
  if layout == HEADS_IN:
    return common.reshape_if_possible(np.transpose(array), heads)
  if layout == HEADS_OUT:
    return common.reshape_if_possible(array, heads)
  return array


def to_hf(array: np.ndarray, layout: str) -> np.ndarray:
  """Pax tensor -> HF layout (inverse of `to_pax`)."""
  if layout == TRANSPOSE:
    return np.transpose(array)
  if layout == HEADS_IN:  # [D, N, H] -> [N*H, D]
    return np.transpose(np.reshape(array, (array.shape[0], -1)))
  if layout == HEADS_OUT:  # [D, N, H] -> [D, N*H]
    return np.reshape(array, (array.shape[0], -1))
  return array


def _mapper(cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder]):
  names = hf_names(cfg)
  heads = common.heads_shape(cfg)

  def map_one(name: str, array: np.ndarray) -> tuple[str, np.ndarray]:
    if name not in names:
      return name, array  # unknown: reported as unexpected
    path, layout = names[name]
    return path, to_pax(array, layout, heads)

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
