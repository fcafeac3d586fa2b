"""`pali-pax predict --job_dir DIR --image PATH --prompt TEXT [--step N] [--exp NAME]`.

Loads the job's model with `Predictor.from_checkpoint` (the experiment,
`--fdl.*` overrides and vocabulary recorded in DIR/pali_pax.json, or --exp),
reads each image file exactly as the seqio tasks do (`tasks.image_ops.load_image`:
decode, resize to IMAGE_SIZE with antialiasing, scale to [-1, 1]) and prints one greedy
decode per image (MAX_DECODE_LEN tokens, the experiment's decode setting).
"""

import argparse

import numpy as np

from pali_pax import compile_cache
from pali_pax.cli import common
from pali_pax.inference import Predictor
from pali_pax.tasks import image_ops


def predict(
  job_dir: str,
  images: list[str],
  prompt: str,
  step: int | None = None,
  beam_size: int = 1,
  experiment: str | None = None,
) -> list[str]:
  """One decoded text per image file for `prompt`."""
  predictor = Predictor.from_checkpoint(job_dir, step, experiment=experiment)
  exp = predictor.experiment
  pixels = np.stack([image_ops.load_image(p, exp.IMAGE_SIZE) for p in images])
  return predictor.generate(
    pixels, [prompt] * len(images), max_decode_steps=exp.MAX_DECODE_LEN, beam_size=beam_size
  )


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The flags of `pali-pax predict`."""
  common.add_job_dir(p, positional=True)
  p.add_argument('--image', action='append', required=True, help='image file (repeatable)')
  p.add_argument('--prompt', required=True, help="e.g. 'Generate caption in EN:'")
  common.add_step(p)
  p.add_argument('--beam_size', type=int, default=1, help='1 = greedy (as paxml decodes)')
  common.add_exp(p)
  common.add_no_cache(p)


def run(args: argparse.Namespace) -> int:
  """`pali-pax predict`: one `PATH<TAB>TEXT` line per image."""
  compile_cache.apply(args.no_compilation_cache)
  texts = predict(
    common.job_dir(args), args.image, args.prompt, args.step, args.beam_size, args.exp
  )
  for path, text in zip(args.image, texts, strict=True):
    print(f'{path}\t{text}')
  return 0
