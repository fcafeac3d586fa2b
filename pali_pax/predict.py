"""`pali-pax predict JOB_DIR --image PATH --prompt TEXT [--step N]`.

Loads the job's model with `Predictor.from_checkpoint` (the experiment,
`--fdl.*` overrides and vocabulary recorded in JOB_DIR/pali_pax.json), reads
each image file exactly as the seqio tasks do (`tasks.image_ops`: decode, resize
to IMAGE_SIZE with antialiasing, scale to [-1, 1]) and prints one greedy
decode per image (MAX_DECODE_LEN tokens, the experiment's decode setting).
"""

import argparse
from typing import Any

import numpy as np


def load_image(path: str, image_size: int) -> np.ndarray:
  """float32 [image_size, image_size, 3] in [-1, 1], as the tasks preprocess images."""
  import tensorflow as tf

  from pali_pax.tasks import image_ops

  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'image {path} does not exist')
  data = tf.io.read_file(path)
  try:
    image = image_ops.resize_and_scale(image_ops.decode_image(data), image_size)
  except tf.errors.InvalidArgumentError as e:
    raise ValueError(f'{path} is not a readable image (JPEG/PNG/GIF/BMP): {e.message}') from e
  return image.numpy()


def predict(
  job_dir: str, images: list[str], prompt: str, step: int | None = None, beam_size: int = 1
) -> list[str]:
  """One decoded text per image file for `prompt`."""
  from pali_pax.inference import Predictor

  predictor = Predictor.from_checkpoint(job_dir, step)
  exp = predictor.experiment
  pixels = np.stack([load_image(p, exp.IMAGE_SIZE) for p in images])
  return predictor.generate(
    pixels, [prompt] * len(images), max_decode_steps=exp.MAX_DECODE_LEN, beam_size=beam_size
  )


def add_parser(sub: Any) -> None:
  """Registers `pali-pax predict` on the CLI's sub-parsers."""
  from pali_pax import compile_cache

  p = sub.add_parser('predict', help='caption / answer image files with a trained job dir')
  p.add_argument('job_dir', help='a paxml job dir written by pali-pax train / demo')
  p.add_argument('--image', action='append', required=True, help='image file (repeatable)')
  p.add_argument('--prompt', required=True, help="e.g. 'Generate caption in EN:'")
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: latest)')
  p.add_argument('--beam_size', type=int, default=1, help='1 = greedy (as paxml decodes)')
  compile_cache.add_flag(p)
  p.set_defaults(fn=main)


def main(args: argparse.Namespace) -> int:
  from pali_pax import compile_cache

  compile_cache.apply(args.no_compilation_cache)
  texts = predict(args.job_dir, args.image, args.prompt, args.step, args.beam_size)
  for path, text in zip(args.image, texts, strict=True):
    print(f'{path}\t{text}')
  return 0
