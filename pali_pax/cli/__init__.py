"""`pali-pax`: the project's command line, one module of this package per sub-command.

pali-pax demo                   train + evaluate + decode the tiny PaLI (main job)
pali-pax train PAXML_FLAGS      python -m paxml.main with our experiments loaded
pali-pax eval --job_dir DIR ... decode a whole split: predictions + metrics JSON
pali-pax predict --job_dir DIR  caption / answer image files with a trained job dir
pali-pax launch-local ...       `train` as N JAX processes on this machine (multi-host)
pali-pax experiments            list the registered PaxML experiments
pali-pax params NAME            parameter counts per component (abstract, no allocation)
pali-pax tasks [show NAME]      list seqio tasks/mixtures, or show examples of one
pali-pax convert ...            public mT5 / ViT checkpoints -> Pax checkpoint
pali-pax pretrain-vit ...       a ViT pretrained on the synthetic scenes -> a job's step 0
pali-pax export --job_dir DIR   a trained model's mT5 -> HF MT5, ViT -> big_vision .npz / HF SigLIP
pali-pax serve JOB|SAVED_MODEL  TF Serving's REST predict API with dynamic batching
pali-pax merge JOB --out DIR    a LoRA job's adapters folded in: a plain job dir

Flags mean the same in every command: `--exp NAME`, `--job_dir DIR` (paxml's
`--job_log_dir` too), `--step N`, `--out PATH` (`pali_pax.cli.common`).

Errors are one line on stderr (`pali-pax: error: ...`, naming the bad input) and
a non-zero exit status: 2 for a malformed command line, 1 for anything else, 130
when interrupted. `--verbose` (before the command, or anywhere for commands other
than `train`, whose flags go to paxml) prints the traceback as well.
"""

import argparse
import contextlib
import importlib
import io
import sys
import traceback
from types import ModuleType

# Imported before `load` captures stderr: absl's log handler binds the sys.stderr of the
# moment absl.logging is first imported, and bound to the capture buffer it would drop
# every log line of the command (paxml's and ours, `--verbosity` or not).
import absl.logging  # noqa: F401

from pali_pax.cli import common, process

_VERBOSE = ('-v', '--verbose')
_HELP = ('-h', '--help')

# Sub-command -> (its module in this package, one-line help). A command's module is
# imported only when that command is parsed or run, here and nowhere else: the modules
# import jax, paxml, seqio and TensorFlow (10-30 s on a loaded 2-core machine), which
# `pali-pax --help` or a mistyped command should not wait for. Each module has
# `add_arguments(parser)` and `run(args) -> int` (train: `run_argv(argv) -> int`, as
# its flags go to paxml unparsed; its parser is for `pali-pax train --help`).
COMMANDS = {
  'demo': ('demo', 'train, evaluate and decode the tiny PaLI on synthetic data'),
  'train': ('train', 'paxml.main with our experiments loaded (flags pass through to paxml)'),
  'eval': ('eval', 'decode a whole split with a job dir model; metrics + predictions'),
  'predict': ('predict', 'caption / answer image files with a trained job dir'),
  'launch-local': (
    'launch_local',
    'run `pali-pax train` as N JAX processes on this machine (a pod in miniature)',
  ),
  'experiments': ('experiments', 'list registered experiments'),
  'params': ('params', 'parameter counts per component, computed abstractly'),
  'tasks': ('tasks', 'list seqio tasks and mixtures; `tasks show NAME`'),
  'convert': ('convert', 'write a Pax checkpoint from public mT5 / ViT checkpoints'),
  'pretrain-vit': ('pretrain_vit', "pretrain the ViT on the synthetic scenes into a job's step 0"),
  'export': ('export', "a job dir's mT5 -> HF MT5, its ViT -> big_vision .npz / HF SigLIP"),
  'serve': ('serve', "a job dir or SavedModel behind TF Serving's REST predict API"),
  'merge': ('merge', "fold a LoRA job's adapters into a plain job dir (--out DIR)"),
}


def load(command: str) -> ModuleType:
  """The module of a sub-command, without paxml's 'Registered experiment ...' stderr lines."""
  captured = io.StringIO()
  with contextlib.redirect_stderr(captured):
    module = importlib.import_module(f'{__name__}.{COMMANDS[command][0]}')
  process.imports_done(command)
  for line in captured.getvalue().splitlines():
    if not line.startswith('Registered experiment'):
      print(line, file=sys.stderr)
  return module


def build_parser(commands: list[str] | None = None) -> argparse.ArgumentParser:
  """The argparse tree of `pali-pax`, with the arguments of `commands` (default: all).

  The other sub-commands are listed (name and help) without importing their modules.
  """
  commands = list(COMMANDS) if commands is None else commands
  parser = common.Parser(
    prog=common.PROG,
    description=__doc__.split('\n')[0],
    epilog=__doc__.split('\n\n', 2)[2],
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument(*_VERBOSE, action='store_true', help='print tracebacks of errors')
  sub = parser.add_subparsers(dest='command', required=True, parser_class=common.Parser)
  for name, (_, text) in COMMANDS.items():
    p = sub.add_parser(name, help=text, description=text)
    if name in commands:
      module = load(name)
      module.add_arguments(p)
      p.set_defaults(fn=getattr(module, 'run', None))
  return parser


def main(argv: list[str] | None = None) -> int:
  """Entry point of the `pali-pax` console script; returns the exit status.

  Without `argv` (the console script, `python -m pali_pax.cli`) main runs this
  process's command line and manages the process (`pali_pax.cli.process`): no
  garbage collection during the imports, and a command that only prints leaves
  without interpreter teardown once it has succeeded. With `argv`, it only runs the
  command.
  """
  if argv is None:
    process.manage()
  argv = list(sys.argv[1:] if argv is None else argv)
  command = next((i for i, a in enumerate(argv) if a not in _VERBOSE), len(argv))
  name = argv[command] if command < len(argv) else None
  # train's flags after the command are paxml's own (except --help, which is ours).
  passthrough = name == 'train' and not any(a in _HELP for a in argv[command + 1 :])
  cut = command if passthrough else len(argv)
  verbose = any(a in _VERBOSE for a in argv[:cut])
  argv = [a for a in argv[:cut] if a not in _VERBOSE] + argv[cut:]
  try:
    if passthrough:
      return load('train').run_argv(argv[1:])
    args = build_parser([name] if name in COMMANDS else []).parse_args(argv)
    code = args.fn(args)
  except KeyboardInterrupt:
    print(f'{common.PROG}: interrupted', file=sys.stderr)
    return 130
  except Exception as e:  # every error ends as one line (the traceback with --verbose)
    if verbose:
      traceback.print_exc()
    print(common.one_line(e), file=sys.stderr)
    return 1
  if process.managed() and name in process.FAST_EXIT:
    process.exit_now(code)
  return code
