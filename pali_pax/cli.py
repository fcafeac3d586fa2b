"""`pali-pax`: the project's command line.

pali-pax demo                 train + evaluate + decode the tiny PaLI (main job)
pali-pax train PAXML_FLAGS    python -m paxml.main with our experiments loaded
pali-pax eval JOB_DIR --task  decode a whole split: predictions + metrics JSON
pali-pax predict JOB_DIR ...  caption / answer image files with a trained job dir
pali-pax launch-local ...     `train` as N JAX processes on this machine (multi-host)
pali-pax experiments          list the registered PaxML experiments
pali-pax params NAME          parameter counts per component (abstract, no allocation)
pali-pax tasks [show NAME]    list seqio tasks/mixtures, or show examples of one
pali-pax convert ...          public mT5 / ViT checkpoints -> Pax checkpoint
pali-pax export JOB_DIR ...   a trained model's mT5 -> HF MT5, ViT -> big_vision .npz / HF SigLIP

Errors are one line on stderr (`pali-pax: error: ...`, naming the bad input) and
a non-zero exit status: 2 for a malformed command line, 1 for anything else, 130
when interrupted. `--verbose` (before the command, or anywhere for commands other
than `train`, whose flags go to paxml) prints the traceback as well.
"""

import argparse
import contextlib
import io
import sys
import traceback

from pali_pax import compile_cache, eval_cli, export_cli, launch_local, predict
from pali_pax.core import errors

PROG = 'pali-pax'
_VERBOSE = ('-v', '--verbose')


class _Parser(argparse.ArgumentParser):
  """An ArgumentParser whose usage errors are one line (not usage text + error)."""

  def error(self, message: str) -> None:  # type: ignore[override]
    self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


def positive_int(text: str) -> int:
  """argparse type: an integer >= 1."""
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
  if value < 1:
    raise argparse.ArgumentTypeError(f'{text!r} must be >= 1')
  return value


def _train(argv: list[str]) -> int:
  from pali_pax import launch

  return launch.run_paxml_main(argv)


def _demo(args: argparse.Namespace) -> int:
  from pali_pax import demo

  return demo.main(
    job_dir=args.job_dir, steps=args.steps, fresh=args.fresh, no_cache=args.no_compilation_cache
  )


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
      raise errors.InputValidationError('`tasks show` needs a task name: pali-pax tasks show NAME')
    print(tasks_cli.show_examples(args.name, n=args.n, split=args.split))
  else:
    from pali_pax.fiddle_configs import registry

    print(tasks_cli.list_tasks())
    print(registry.describe_finetune_families())
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
  parser = _Parser(prog=PROG, description=__doc__.split('\n')[0])
  parser.add_argument(*_VERBOSE, action='store_true', help='print tracebacks of errors')
  sub = parser.add_subparsers(dest='command', required=True, parser_class=_Parser)

  p = sub.add_parser('demo', help='train, evaluate and decode the tiny PaLI on synthetic data')
  p.add_argument('--job_dir', default='runs/tiny_pali')
  p.add_argument(
    '--steps', type=positive_int, default=None, help='override the number of train steps'
  )
  p.add_argument('--fresh', action='store_true', help='delete job_dir first instead of resuming')
  compile_cache.add_flag(p)
  p.set_defaults(fn=_demo)

  sub.add_parser('train', help='paxml.main with our experiments loaded (all flags passed through)')
  eval_cli.add_parser(sub)
  predict.add_parser(sub)
  launch_local.add_parser(sub)

  p = sub.add_parser('experiments', help='list registered experiments')
  p.set_defaults(fn=_experiments)

  p = sub.add_parser('params', help='parameter counts per component, computed abstractly')
  p.add_argument('name', help='an experiment name or a PaLI size (tiny, 3b, 15b, 17b)')
  p.set_defaults(fn=_params)

  p = sub.add_parser('tasks', help='list seqio tasks and mixtures; `tasks show NAME`')
  p.add_argument('action', nargs='?', default='list', choices=['list', 'show'])
  p.add_argument('name', nargs='?')
  p.add_argument('--n', type=positive_int, default=3)
  p.add_argument('--split', default='validation')
  p.set_defaults(fn=_tasks)

  p = sub.add_parser('convert', help='write a Pax checkpoint from public mT5 / ViT checkpoints')
  p.add_argument('--exp', required=True, help='registered experiment whose model to fill')
  p.add_argument('--job_log_dir', required=True, help='paxml job dir to write checkpoints/ into')
  p.add_argument('--mt5', required=True, help='HF mT5 directory or T5X checkpoint directory')
  p.add_argument('--vit', default=None, help='big_vision .npz or HF SigLIP/ViT directory')
  p.add_argument('--seed', type=int, default=0, help='seed of the newly initialised parts')
  p.set_defaults(fn=_convert)

  export_cli.add_parser(sub)
  return parser


def _import_experiments() -> None:
  """Registers our experiments without paxml's 'Registered experiment ...' lines on stderr."""
  captured = io.StringIO()
  with contextlib.redirect_stderr(captured):
    from pali_pax.fiddle_configs import experiments  # noqa: F401
  for line in captured.getvalue().splitlines():
    if not line.startswith('Registered experiment'):
      print(line, file=sys.stderr)


def _one_line(e: BaseException) -> str:
  """The error as one line: the message's first line; internal errors say so."""
  lines = str(e).strip().splitlines() or ['']
  text = lines[0] + (' [...]' if len(lines) > 1 else '')
  if isinstance(e, errors.PaliPaxError | OSError | ValueError):
    return f'{PROG}: error: {text}'
  return f'{PROG}: error: {type(e).__name__}: {text} (unexpected; --verbose shows the traceback)'


def main(argv: list[str] | None = None) -> int:
  """Entry point of the `pali-pax` console script; returns the exit status."""
  argv = list(sys.argv[1:] if argv is None else argv)
  command = next((i for i, a in enumerate(argv) if a not in _VERBOSE), len(argv))
  cut = command if argv[command : command + 1] == ['train'] else len(argv)  # paxml's own flags
  verbose = any(a in _VERBOSE for a in argv[:cut])
  argv = [a for a in argv[:cut] if a not in _VERBOSE] + argv[cut:]
  try:
    if argv and argv[0] == 'train':
      return _train(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command in ('demo', 'experiments', 'params', 'convert'):
      _import_experiments()
    return args.fn(args)
  except KeyboardInterrupt:
    print(f'{PROG}: interrupted', file=sys.stderr)
    return 130
  except Exception as e:  # every error ends as one line (the traceback with --verbose)
    if verbose:
      traceback.print_exc()
    print(_one_line(e), file=sys.stderr)
    return 1


if __name__ == '__main__':
  sys.exit(main())
