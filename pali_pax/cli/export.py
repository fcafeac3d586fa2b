"""`pali-pax export --job_dir DIR --mt5_out DIR --vit_npz FILE --vit_hf DIR [--step N]`.

`pali-pax export JOB --saved_model DIR [--quantize int8] [--max_decode_steps N]
[--beam_size 1]` writes a TensorFlow SavedModel for TF Serving / Vertex AI instead
(`pali_pax.serving.saved_model`: image and prompt strings in, text and score out).

Reads a checkpoint (default: the latest) of a paxml job dir (the experiment from
its pali_pax.json, or --exp) and writes its mT5 as a Hugging Face MT5 checkpoint
and its ViT as a big_vision .npz and / or a HF SigLIP directory
(`pali_pax.convert.export`).
"""

import argparse

from pali_pax import job_config
from pali_pax.cli import common
from pali_pax.convert.export import export_pali
from pali_pax.core import errors
from pali_pax.serving import saved_model
from pali_pax.tasks import vocab


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The flags of `pali-pax export`."""
  common.add_job_dir(
    p, positional=True, help='paxml job dir (its checkpoints/ folder) of a PaLI experiment'
  )
  common.add_exp(p)
  common.add_step(p)
  p.add_argument('--mt5_out', default=None, help='HF MT5 directory to write')
  p.add_argument('--vit_npz', default=None, help='big_vision .npz file to write')
  p.add_argument('--vit_hf', default=None, help='HF SigLIP vision directory to write')
  p.add_argument('--saved_model', default=None, help='TensorFlow SavedModel directory to write')
  p.add_argument('--quantize', default=None, choices=['int8'], help='SavedModel weights as int8')
  p.add_argument(
    '--max_decode_steps', type=common.positive_int, default=None, help='SavedModel decode steps'
  )
  p.add_argument('--beam_size', type=common.positive_int, default=1, help='SavedModel: only 1')


def run(args: argparse.Namespace) -> int:
  """`pali-pax export`: writes the files, prints their paths."""
  if args.saved_model:
    info = saved_model.export(
      common.job_dir(args),
      args.saved_model,
      step=args.step,
      max_decode_steps=args.max_decode_steps,
      beam_size=args.beam_size,
      quantize=args.quantize,
    )
    print(f'wrote {info.saved_model} (settings {info.settings}, platforms {info.platforms})')
    if not (args.mt5_out or args.vit_npz or args.vit_hf):
      return 0
  if not (args.mt5_out or args.vit_npz or args.vit_hf):
    raise errors.InputValidationError(
      'export writes nothing: give --saved_model, --mt5_out, --vit_npz and/or --vit_hf'
    )
  exp, params = job_config.load_model_params(common.job_dir(args), args.exp, step=args.step)
  written = export_pali(
    params,
    exp.model_config(),
    mt5_out=args.mt5_out,
    vit_npz=args.vit_npz,
    vit_hf=args.vit_hf,
    vocab_path=exp.VOCAB_PATH or vocab.DEFAULT_VOCAB_PATH,
  )
  for path in written:
    print(f'wrote {path}')
  return 0
