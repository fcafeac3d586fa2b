"""A trained PaLI's components as public checkpoints: the way out that mirrors `load_components`.

    from pali_pax.convert.export import export_pali
    export_pali(params, model_cfg, mt5_out='out/mt5', vit_npz='out/vit.npz', vit_hf='out/vit')

writes its mT5 as a Hugging Face `MT5ForConditionalGeneration` directory
(`export_mt5`), its ViT as a big_vision .npz and/or a HF `SiglipVisionModel`
directory (`export_vit`). The ViT-to-mT5 projection (`fusion`) has no public
format and is not exported. `pali-pax export` runs this on a paxml job dir.
"""

import os
import shutil
from typing import Any

from praxis import pax_fiddle

from pali_pax import model as model_lib
from pali_pax.convert.export_mt5 import export_mt5_hf
from pali_pax.convert.export_vit import export_vit_big_vision, export_vit_hf
from pali_pax.core import errors

SPIECE = 'spiece.model'  # the file name transformers' T5Tokenizer looks for


def export_pali(
  params: dict[str, Any],
  cfg: pax_fiddle.Config[model_lib.PaliModel],
  mt5_out: str | None = None,
  vit_npz: str | None = None,
  vit_hf: str | None = None,
  vocab_path: str | None = None,
) -> list[str]:
  """Writes the requested exports of a PaliModel's `params`; returns the paths written.

  Args:
    params: the PaliModel `params` tree ({'mt5': ..., 'vit': ..., 'fusion': ...}).
    cfg: its PaliModel config (sizes; scanned stacks are unstacked).
    mt5_out: HF mT5 directory to write (config.json, model.safetensors and, with
      `vocab_path`, the SentencePiece model as spiece.model).
    vit_npz: big_vision .npz file to write.
    vit_hf: HF SigLIP vision directory to write.
    vocab_path: SentencePiece model the mT5 was trained with.

  Raises:
    ValueError: nothing to export, or a ViT export of a text-only model.
    CheckpointMismatchError: `params` does not fit `cfg` (names the tensor).
  """
  if not (mt5_out or vit_npz or vit_hf):
    raise errors.InputValidationError('nothing to export: give mt5_out, vit_npz and/or vit_hf')
  if (vit_npz or vit_hf) and (cfg.vit_tpl is None or 'vit' not in params):
    raise errors.InputValidationError(
      'this model has no ViT (vit_tpl is None); export only its mT5'
    )
  written = []
  if mt5_out:
    written.append(export_mt5_hf(params['mt5'], cfg.mt5_tpl, mt5_out))
    if vocab_path:
      shutil.copyfile(vocab_path, os.path.join(mt5_out, SPIECE))
  if vit_npz:
    written.append(export_vit_big_vision(params['vit'], cfg.vit_tpl, vit_npz))
  if vit_hf:
    written.append(export_vit_hf(params['vit'], cfg.vit_tpl, vit_hf))
  return written
