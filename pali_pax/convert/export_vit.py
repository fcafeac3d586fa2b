"""VisionTransformer params -> a big_vision .npz and a Hugging Face SigLIP vision directory.

    export_vit_big_vision(params['vit'], cfg.vit_tpl, 'out/vit.npz')
    export_vit_hf(params['vit'], cfg.vit_tpl, 'out/vit_siglip')   # SiglipVisionModel

Both go through the canonical names of `vit_common` and the readers' own name
tables (`vit_big_vision.source_name`, `vit_hf.source_name`) and layouts
(`from_canonical`, the inverse of each reader's), so `load_vit` of the output
gives back the same params exactly. The big_vision file uses per-layer
`Transformer/encoderblock_{i}` names. PaLI's ViT has no pooling head, so the HF
config sets `vision_use_head: false`.
"""

import os
from typing import Any

import numpy as np

from pali_pax.convert import hf_files, vit_big_vision, vit_hf
from pali_pax.convert.vit_common import ViTConfigOrLayer, as_layer, params_to_canonical
from pali_pax.core.errors import CheckpointMismatchError

HF_PREFIX = 'vision_model.'


def _kind(canonical: str) -> str:
  """'block/3/q/w' -> 'q/w'; global names are their own kind."""
  return canonical.split('/', 2)[2] if canonical.startswith('block/') else canonical


def vit_to_big_vision_arrays(
  params: dict[str, Any], cfg_or_layer: ViTConfigOrLayer
) -> dict[str, np.ndarray]:
  """{big_vision name: array} of a VisionTransformer `params` tree."""
  canonical = params_to_canonical(params, cfg_or_layer)
  return {
    vit_big_vision.source_name(c): vit_big_vision.from_canonical(_kind(c), a)
    for c, a in canonical.items()
  }


def export_vit_big_vision(params: dict[str, Any], cfg_or_layer: ViTConfigOrLayer, path: str) -> str:
  """Writes a big_vision .npz (float32); returns `path`."""
  arrays = vit_to_big_vision_arrays(params, cfg_or_layer)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'wb') as f:  # a file object: np.savez would append '.npz' to other names
    np.savez(f, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
  return path


def vit_hf_config(cfg_or_layer: ViTConfigOrLayer) -> dict[str, Any]:
  """config.json of a SiglipVisionModel with the sizes of this ViT."""
  layer = as_layer(cfg_or_layer)
  sizes = {hf: getattr(layer, ours) for hf, ours in vit_hf.CONFIG_SIZES.items()}
  return {
    'architectures': ['SiglipVisionModel'],
    'model_type': 'siglip_vision_model',
    **sizes,
    'layer_norm_eps': layer.layer_norm_epsilon,
    'hidden_act': 'gelu_pytorch_tanh',
    'num_channels': 3,
    'attention_dropout': 0.0,
    'vision_use_head': False,
  }


def vit_to_hf_tensors(
  params: dict[str, Any], cfg_or_layer: ViTConfigOrLayer
) -> dict[str, np.ndarray]:
  """{HF SigLIP name: array} of a VisionTransformer `params` tree.

  Raises:
    CheckpointMismatchError: the ViT has no learned position embedding (SigLIP needs one).
  """
  layer = as_layer(cfg_or_layer)
  if layer.posemb != 'learn':
    raise CheckpointMismatchError(
      f'ViT posemb={layer.posemb!r}: a HF SigLIP model needs a learned position embedding'
    )
  canonical = params_to_canonical(params, layer)
  return {
    vit_hf.source_name(c, HF_PREFIX): vit_hf.from_canonical(_kind(c), a)
    for c, a in canonical.items()
  }


def export_vit_hf(params: dict[str, Any], cfg_or_layer: ViTConfigOrLayer, directory: str) -> str:
  """Writes `directory`/config.json + model.safetensors; returns `directory`."""
  tensors = vit_to_hf_tensors(params, cfg_or_layer)
  return hf_files.write_hf_dir(directory, vit_hf_config(cfg_or_layer), tensors)
