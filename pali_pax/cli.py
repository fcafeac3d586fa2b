"""`pali-pax`: the project's command line.

pali-pax demo                 train + evaluate + decode the tiny PaLI (main job)
pali-pax train PAXML_FLAGS    python -m paxml.main with our experiments loaded
pali-pax launch-local ...     `train` as N JAX processes on this machine (multi-host)
pali-pax experiments          list the registered PaxML experiments
pali-pax params NAME          parameter counts per component (abstract, no allocation)
pali-pax tasks [show NAME]    list seqio tasks/mixtures, or show examples of one
pali-pax convert ...          public mT5 / ViT checkpoints -> Pax checkpoint
"""

import argparse
import sys

from pali_pax import launch_local


def _train(argv: list[str]) -> int:
  from pali_pax import launch

  return launch.run_paxml_main(argv)


def _demo(args: argparse.Namespace) -> int:
  from pali_pax import demo

  return demo.main(job_dir=args.job_dir, steps=args.steps, fresh=args.fresh)


def _experiments(_: argparse.Namespace) -> int:
  from pali_pax.fiddle_configs import registry

  print(registry.describe_experiments())
  return 0


def _params(args: argparse.Namespace) -> int:
  from pali_pax import param_count

  print(param_count.describe(args.name))
  return 0


def _tasks(args: argparse.Namespace) -> int:
  from pali_pax.tasks import cli as tasks_cli

  if args.action == 'show':
    if not args.name:
      raise SystemExit('usage: pali-pax tasks show NAME')
    print(tasks_cli.show_examples(args.name, n=args.n, split=args.split))
  else:
    print(tasks_cli.list_tasks())
  return 0


def _convert(args: argparse.Namespace) -> int:
  from pali_pax import checkpoint

  checkpoint.convert_to_pax(
    exp=args.exp,
    job_log_dir=args.job_log_dir,
    mt5=args.mt5,
    vit=args.vit,
    seed=args.seed,
  )
  return 0


def build_parser() -> argparse.ArgumentParser:
  """The argparse tree of `pali-pax` (train is handled before parsing)."""
  parser = argparse.ArgumentParser(prog='pali-pax', description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='command', required=True)

  p = sub.add_parser('demo', help='train, evaluate and decode the tiny PaLI on synthetic data')
  p.add_argument('--job_dir', default='runs/tiny_pali')
  p.add_argument('--steps', type=int, default=None, help='override the number of train steps')
  p.add_argument('--fresh', action='store_true', help='delete job_dir first instead of resuming')
  p.set_defaults(fn=_demo)

  sub.add_parser('train', help='paxml.main with our experiments loaded (all flags passed through)')
  launch_local.add_parser(sub)

  p = sub.add_parser('experiments', help='list registered experiments')
  p.set_defaults(fn=_experiments)

  p = sub.add_parser('params', help='parameter counts per component, computed abstractly')
  p.add_argument('name', help='an experiment name or a PaLI size (tiny, 3b, 15b, 17b)')
  p.set_defaults(fn=_params)

  p = sub.add_parser('tasks', help='list seqio tasks and mixtures; `tasks show NAME`')
  p.add_argument('action', nargs='?', default='list', choices=['list', 'show'])
  p.add_argument('name', nargs='?')
  p.add_argument('--n', type=int, default=3)
  p.add_argument('--split', default='validation')
  p.set_defaults(fn=_tasks)

  p = sub.add_parser('convert', help='write a Pax checkpoint from public mT5 / ViT checkpoints')
  p.add_argument('--exp', required=True, help='registered experiment whose model to fill')
  p.add_argument('--job_log_dir', required=True, help='paxml job dir to write checkpoints/ into')
  p.add_argument('--mt5', required=True, help='HF mT5 directory or T5X checkpoint directory')
  p.add_argument('--vit', default=None, help='big_vision .npz or HF SigLIP/ViT directory')
  p.add_argument('--seed', type=int, default=0, help='seed of the newly initialised parts')
  p.set_defaults(fn=_convert)
  return parser


def main(argv: list[str] | None = None) -> int:
  """Entry point of the `pali-pax` console script."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if argv and argv[0] == 'train':
    return _train(argv[1:])
  args = build_parser().parse_args(argv)
  return args.fn(args)


if __name__ == '__main__':
  sys.exit(main())
