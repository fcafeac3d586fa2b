"""`pali-pax launch-local --processes N [options] -- TRAIN_FLAGS` (`pali_pax.launch_local`).

    pali-pax launch-local --processes 2 --devices_per_process 4 -- \\
      --exp=PaliTinySyntheticSpmd --job_dir=/tmp/j --fdl.NUM_TRAIN_STEPS=20
"""

import argparse

from pali_pax import launch_local
from pali_pax.cli import common


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The flags of `pali-pax launch-local`."""
  p.usage = 'pali-pax launch-local --processes N [options] -- TRAIN_FLAGS'
  p.add_argument(
    '--processes', type=common.positive_int, required=True, help='number of JAX processes (hosts)'
  )
  p.add_argument(
    '--devices_per_process',
    type=common.positive_int,
    default=4,
    help='emulated CPU devices each',
  )
  p.add_argument('--port', type=int, default=None, help='coordinator port (default: a free one)')
  p.add_argument('--timeout', type=float, default=None, help='total limit in seconds')
  p.add_argument('--grace', type=float, default=10.0, help='seconds from SIGTERM to SIGKILL')
  p.add_argument('train_flags', nargs=argparse.REMAINDER, help='`pali-pax train` flags after --')


def run(args: argparse.Namespace) -> int:
  """`pali-pax launch-local`: the job's exit status."""
  flags = list(args.train_flags)
  if flags and flags[0] == '--':
    flags = flags[1:]
  return launch_local.launch_local(
    args.processes,
    flags,
    devices_per_process=args.devices_per_process,
    port=args.port,
    timeout_s=args.timeout,
    grace_s=args.grace,
  )
