"""`pali-pax convert --exp NAME --job_dir DIR --mt5 PATH [--vit PATH]`: public checkpoints -> Pax.

Writes DIR/checkpoints/checkpoint_00000000 (and DIR/pali_pax.json) for the
experiment, from a public mT5 and (optionally) ViT checkpoint; `pali-pax train
--exp NAME --job_dir DIR` then starts from it (`pali_pax.convert.to_pax`).
"""

import argparse

from pali_pax.cli import common
from pali_pax.convert import to_pax


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The flags of `pali-pax convert`."""
  common.add_exp(p, required=True, help='registered experiment whose model to fill')
  common.add_job_dir(p, help='paxml job dir to write checkpoints/ into')
  p.add_argument('--mt5', required=True, help='HF mT5 directory or T5X checkpoint directory')
  p.add_argument('--vit', default=None, help='big_vision .npz or HF SigLIP/ViT directory')
  p.add_argument('--seed', type=int, default=0, help='seed of the newly initialised parts')


def run(args: argparse.Namespace) -> int:
  """`pali-pax convert`."""
  to_pax.convert_to_pax(
    exp=args.exp, job_log_dir=args.job_dir, mt5=args.mt5, vit=args.vit, seed=args.seed
  )
  return 0
