"""`pali-pax export JOB_DIR --mt5_out DIR --vit_npz FILE --vit_hf DIR`.

Reads the latest checkpoint of a paxml job dir (the experiment from its
pali_pax.json, or --experiment) and writes its mT5 as a Hugging Face MT5
checkpoint and its ViT as a big_vision .npz and / or a HF SigLIP directory
(`pali_pax.convert.export`).
"""

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
  """Registers the `export` sub-command."""
  p = sub.add_parser(
    'export', help="a job dir's mT5 -> HF MT5, its ViT -> big_vision .npz / HF SigLIP"
  )
  p.add_argument('job_dir', help='paxml job dir (its checkpoints/ folder) of a PaLI experiment')
  p.add_argument('--experiment', default=None, help='experiment name, if the job dir has none')
  p.add_argument('--mt5_out', default=None, help='HF MT5 directory to write')
  p.add_argument('--vit_npz', default=None, help='big_vision .npz file to write')
  p.add_argument('--vit_hf', default=None, help='HF SigLIP vision directory to write')
  p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
  from pali_pax import checkpoint
  from pali_pax.convert.export import export_pali
  from pali_pax.tasks import vocab

  if not (args.mt5_out or args.vit_npz or args.vit_hf):
    raise SystemExit('pali-pax export: give --mt5_out, --vit_npz and/or --vit_hf')
  exp, params = checkpoint.load_model_params(args.job_dir, args.experiment)
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
