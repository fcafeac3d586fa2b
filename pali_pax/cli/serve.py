"""`pali-pax serve JOB|SAVED_MODEL [--port N] [--host H] [--servable NAME] [--quantize int8]`.

Serves a job dir (its model through the Predictor) or a SavedModel (`pali-pax export
--saved_model`) with TF Serving's REST predict API and dynamic batching
(`pali_pax.serving.server`):

    curl -s localhost:8501/v1/models/pali            # 200 once every batch bucket is warm
    curl -s -X POST localhost:8501/v1/models/pali:predict \\
      -d '{"instances": [{"image_b64": "'$(base64 -w0 cat.jpg)'", "prompt": "Generate caption in en:"}]}'

SIGTERM answers the requests in flight, refuses new ones (503) and exits 0.
"""

import argparse

from pali_pax import compile_cache
from pali_pax.cli import common
from pali_pax.core import errors
from pali_pax.serving import server

DEFAULT_PORT = 8501  # TF Serving's REST port


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The flags of `pali-pax serve`."""
  p.add_argument('path', help='a paxml job dir or a SavedModel dir (pali-pax export --saved_model)')
  p.add_argument(
    '--port',
    type=common.positive_int,
    default=DEFAULT_PORT,
    help=f"TCP port (default {DEFAULT_PORT}, TF Serving's REST port)",
  )
  p.add_argument('--host', default='127.0.0.1', help='address to listen on (0.0.0.0: all)')
  p.add_argument(
    '--servable',
    default=None,
    help="registered servable name (pali_pax.serving.servable); default: the experiment's",
  )
  p.add_argument(
    '--batch_sizes',
    default=None,
    help='override BATCH_SIZES, comma-separated buckets (e.g. 1,4,16; 1 = one at a time)',
  )
  p.add_argument('--batch_wait_ms', type=float, default=None, help='override BATCH_WAIT_MS')
  p.add_argument(
    '--quantize',
    choices=['int8'],
    default=None,
    help='int8 weights for the ViT / mT5 linears (a job dir; a SavedModel has its own)',
  )
  common.add_no_cache(p)


def _settings(args: argparse.Namespace) -> dict:
  settings: dict = {}
  if args.batch_sizes:
    try:
      settings['BATCH_SIZES'] = tuple(int(b) for b in args.batch_sizes.split(','))
    except ValueError:
      raise errors.InputValidationError(
        f'--batch_sizes must be comma-separated integers, got {args.batch_sizes!r}'
      ) from None
  if args.batch_wait_ms is not None:
    settings['BATCH_WAIT_MS'] = args.batch_wait_ms
  if args.quantize is not None:
    settings['QUANTIZE'] = args.quantize
  return settings


def run(args: argparse.Namespace) -> int:
  """`pali-pax serve`: serves until SIGTERM / Ctrl-C; 0 after a clean drain."""
  compile_cache.apply(args.no_compilation_cache)
  return server.serve_path(args.path, args.port, args.host, args.servable, **_settings(args))
