"""Pax `Mt5EncoderDecoder` params -> a Hugging Face `MT5ForConditionalGeneration` directory.

    export_mt5_hf(params['mt5'], cfg.mt5_tpl, 'out/mt5')   # config.json + model.safetensors
    # then, where transformers is installed:
    # MT5ForConditionalGeneration.from_pretrained('out/mt5')

Names and layouts are those of the reader (`mt5_hf.hf_names`, `mt5_hf.to_hf`), so
`load_mt5_hf` of the written directory gives back the same params exactly.
"""

from typing import Any

import numpy as np
from praxis import pax_fiddle

from pali_pax.convert import hf_files, mt5_hf
from pali_pax.convert import mt5_common as common
from pali_pax.core import batch as batch_lib
from pali_pax.core import tree
from pali_pax.layers import mt5


def mt5_hf_config(cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder]) -> dict[str, Any]:
  """config.json of `cfg` as transformers' MT5Config (inverse of `mt5_config_from_hf`)."""
  sizes = {hf: getattr(cfg, ours) for hf, ours in mt5_hf.CONFIG_SIZES.items()}
  return {
    'architectures': ['MT5ForConditionalGeneration'],
    'model_type': 'mt5',
    **sizes,
    'layer_norm_epsilon': cfg.layer_norm_epsilon,
    'feed_forward_proj': 'gated-gelu',
    'dense_act_fn': 'gelu_new',  # the tanh-approximated GELU of mT5
    'is_gated_act': True,
    'tie_word_embeddings': False,
    'is_encoder_decoder': True,
    'dropout_rate': cfg.dropout_prob,
    'pad_token_id': batch_lib.PAD_ID,
    'eos_token_id': batch_lib.EOS_ID,
    'decoder_start_token_id': batch_lib.DECODER_START_ID,
    'tokenizer_class': 'T5Tokenizer',
  }


def mt5_to_hf_tensors(
  params: dict[str, Any], cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder]
) -> dict[str, np.ndarray]:
  """{HF name: float32 array} of an mT5 `params` tree (scanned stacks are unstacked).

  Raises:
    CheckpointMismatchError: `params` is not exactly the tree of `cfg` (names the tensor).
  """
  flat = tree.unstack_layer_params(tree.flatten(params))
  checked = tree.flatten(
    tree.fill_tree(common.expected_params(common.unscanned(cfg)), flat, 'params')
  )
  return {
    name: mt5_hf.to_hf(checked[path], layout)
    for name, (path, layout) in mt5_hf.hf_names(cfg).items()
  }


def export_mt5_hf(
  params: dict[str, Any], cfg: pax_fiddle.Config[mt5.Mt5EncoderDecoder], directory: str
) -> str:
  """Writes `directory`/config.json + model.safetensors; returns `directory`."""
  return hf_files.write_hf_dir(directory, mt5_hf_config(cfg), mt5_to_hf_tensors(params, cfg))
