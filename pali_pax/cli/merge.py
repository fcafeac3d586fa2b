"""`pali-pax merge JOB --out DIR [--step N]`: fold a LoRA job's adapters into a plain job dir.

DIR gets a checkpoint whose weights are W + (alpha / r) A B and a pali_pax.json
naming the same experiment with TRAINABLE='all' (`pali_pax.lora_merge`): predict,
eval, export and serve load it like any other job.
"""

import argparse

from pali_pax import lora_merge
from pali_pax.cli import common
from pali_pax.core import errors


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The flags of `pali-pax merge`."""
  common.add_job_dir(p, positional=True, help='job dir of a LoRA fine-tune (TRAINABLE=lora)')
  common.add_step(p)
  common.add_out(p, help='the plain job dir to write (must not hold checkpoints)')


def run(args: argparse.Namespace) -> int:
  """Writes the merged job dir, prints its checkpoint step dir."""
  if not args.out:
    raise errors.InputValidationError('merge needs --out DIR (the plain job dir to write)')
  print(lora_merge.merge(common.job_dir(args), args.out, step=args.step))
  return 0
