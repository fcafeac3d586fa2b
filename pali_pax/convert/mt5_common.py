"""Pieces shared by the mT5 checkpoint converters (HF and T5X).

Both converters name each source tensor's place in the Pax tree through the
`PaxTarget` helpers below and leave the strict structural check to
`pali_pax.core.tree.fill_tree`.
"""

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from praxis import pax_fiddle
from tqdm import tqdm

from pali_pax.core import params as params_lib
from pali_pax.core import tree
from pali_pax.core.errors import CheckpointMismatchError
from pali_pax.layers import mt5

EMBEDDING = 'token_emb/emb_var'
LM_HEAD = 'softmax/logits_ffn/linear/w'

# Per-block Pax sub-paths (relative to '<stack>/x_layers_<i>/').
SELF_NORM = 'self_attention_norm/scale'
CROSS_NORM = 'cross_attention_norm/scale'
FF_NORM = 'ff/layer_norm/scale'
FF_WEIGHTS = {
  'wi_0': 'ff/ffn_layer1_gate/linear/w',  # GELU side of the gate
  'wi_1': 'ff/ffn_layer1/linear/w',  # linear side
  'wo': 'ff/ffn_layer2/linear/w',
}


def block_path(stack: str, index: int | str, sub: str) -> str:
  """Pax path of a block parameter, e.g. ('encoder', 0, FF_NORM)."""
  return f'{stack}/x_layers_{int(index)}/{sub}'


def attention_path(stack: str, index: int | str, cross: bool, proj: str) -> str:
  """Pax path of an attention projection ('query', 'key', 'value' or 'post')."""
  layer = 'cross_attention' if cross else 'self_attention'
  return block_path(stack, index, f'{layer}/{proj}/w')


def relative_bias_path(stack: str) -> str:
  return f'{stack}/relative_bias/emb_var'


def final_norm_path(stack: str) -> str:
  return f'{stack}/final_norm/scale'


def reshape_if_possible(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """Reshapes when the sizes agree; otherwise returns `array` unchanged so the
  strict check reports the checkpoint's own shape."""
  if int(np.prod(np.shape(array))) == int(np.prod(shape)):
    return np.reshape(array, shape)
  return array


def heads_shape(cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder]) -> tuple[int, int, int]:
  return (cfg.model_dims, cfg.num_heads, cfg.dim_per_head)


def expected_params(cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder]) -> dict[str, Any]:
  """Abstract `params` tree (shapes only, nothing allocated) of `cfg`."""
  ids = jax.ShapeDtypeStruct((1, 2), jnp.int32)
  paddings = jax.ShapeDtypeStruct((1, 2), jnp.float32)
  return params_lib.abstract_params(cfg, ids, paddings, ids, paddings)


def check_vocab(
  found: int, cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder], source: str, name: str
) -> None:
  """Raises CheckpointMismatchError when the vocabulary sizes differ."""
  if found != cfg.vocab_size:
    raise CheckpointMismatchError(
      f'{source}: checkpoint vocabulary size {found} (from {name}) differs from the '
      f'config vocabulary size {cfg.vocab_size}'
    )


def convert_all(
  names: Iterable[str],
  read: Callable[[str], np.ndarray],
  map_one: Callable[[str, np.ndarray], tuple[str, np.ndarray] | None],
  source: str,
  desc: str,
  progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Reads and maps every source tensor, with a tqdm progress bar.

  Args:
    names: source tensor names.
    read: name -> numpy array.
    map_one: (name, array) -> (pax_path, converted array), or None to skip the
      tensor silently (e.g. a tied alias checked elsewhere). An unknown name
      should map to itself so `fill_tree` reports it as unexpected.
    source: checkpoint path (for messages).
    desc: progress bar label.
    progress: show the progress bar.

  Returns:
    ({pax_path: array}, {pax_path: source name}).
  """
  loaded: dict[str, np.ndarray] = {}
  source_names: dict[str, str] = {}
  names = list(names)
  for name in tqdm(names, desc=desc, unit='tensor', disable=not progress):
    mapped = map_one(name, read(name))
    if mapped is None:
      continue
    path, array = mapped
    if path in loaded:
      raise CheckpointMismatchError(
        f'{source}: tensors {source_names[path]} and {name} both map to {path}'
      )
    loaded[path] = array
    source_names[path] = name
  return loaded, source_names


def unscanned(cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder]) -> pax_fiddle.Config:
  """`cfg` with per-layer (unscanned) encoder and decoder stacks."""
  cfg = copy.deepcopy(cfg)
  cfg.encoder_tpl.scan = False
  cfg.decoder_tpl.scan = False
  return cfg


def finish(
  cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder],
  loaded: Mapping[str, np.ndarray],
  source: str,
  source_names: Mapping[str, str],
) -> dict[str, Any]:
  """Strict check against the model's parameter tree; float32 numpy leaves.

  Checkpoints are per layer. The check runs in that layout (so errors name
  single layers); a stack with `scan=True` then gets its layers stacked into
  `repeat/sub/...` leaves with a leading [num_layers] axis.
  """
  params = tree.fill_tree(expected_params(unscanned(cfg)), loaded, source, source_names)
  scanned = [s for s in ('encoder', 'decoder') if getattr(cfg, f'{s}_tpl').scan]
  if not scanned:
    return params
  flat = tree.flatten(params)
  for stack in scanned:
    part = {k: flat.pop(k) for k in list(flat) if k.startswith(f'{stack}/')}
    flat.update(tree.stack_layer_params(part))
  return tree.fill_tree(expected_params(cfg), flat, source)
