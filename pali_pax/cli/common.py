"""What every `pali-pax` sub-command shares: the parser, argument types, the flag reader.

- `Parser`: an ArgumentParser whose usage errors are one line.
- `one_line(e)`: an exception as the one `pali-pax: error: ...` line printed for it.
- `positive_int`: argparse type of counts.
- `add_exp / add_job_dir / add_step / add_out / add_no_cache`: the flags that mean the same thing in
  every command (`--exp NAME`, `--job_dir DIR`, `--step N`, `--out PATH`), so their
  names and help stay one.
- `read_flags / flag_value`: the one reader of flags from a raw argv (the `train`
  pass-through, whose argv goes to paxml's absl parser): `--x=v` and `--x v`, as absl.
"""

import argparse
from collections.abc import Iterable

from pali_pax import compile_cache
from pali_pax.core import errors

PROG = 'pali-pax'
NO_CACHE = '--no_compilation_cache'


class Parser(argparse.ArgumentParser):
  """An ArgumentParser whose usage errors are one line (not usage text + error)."""

  def error(self, message: str) -> None:  # type: ignore[override]
    self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


def one_line(e: BaseException) -> str:
  """The error as one line: the message's first line; internal errors say so."""
  lines = str(e).strip().splitlines() or ['']
  text = lines[0] + (' [...]' if len(lines) > 1 else '')
  if isinstance(e, errors.PaliPaxError | OSError | ValueError):
    return f'{PROG}: error: {text}'
  return f'{PROG}: error: {type(e).__name__}: {text} (unexpected; --verbose shows the traceback)'


def positive_int(text: str) -> int:
  """argparse type: an integer >= 1."""
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
  if value < 1:
    raise argparse.ArgumentTypeError(f'{text!r} must be >= 1')
  return value


def add_exp(p: argparse.ArgumentParser, required: bool = False, help: str | None = None) -> None:
  """--exp NAME: a registered experiment (`pali-pax experiments` lists them)."""
  p.add_argument(
    '--exp',
    required=required,
    default=None,
    help=help or 'registered experiment (default: the one in JOB_DIR/pali_pax.json)',
  )


def add_job_dir(
  p: argparse.ArgumentParser,
  default: str | None = None,
  positional: bool = False,
  help: str = 'a paxml job dir written by pali-pax train / demo',
) -> None:
  """--job_dir DIR (also paxml's spelling --job_log_dir).

  `positional`: JOB_DIR may also be given bare (`pali-pax eval DIR`), as before
  `--job_dir`; `job_dir(args)` reads either.
  """
  names = ['--job_dir', '--job_log_dir']
  if not positional:
    p.add_argument(*names, dest='job_dir', required=default is None, default=default, help=help)
    return
  group = p.add_mutually_exclusive_group(required=True)
  group.add_argument('job_dir_arg', nargs='?', metavar='JOB_DIR', help=f'{help} (or --job_dir)')
  group.add_argument(*names, dest='job_dir', default=None, help=help)


def job_dir(args: argparse.Namespace) -> str:
  """The job dir of a command with `add_job_dir(positional=True)`."""
  return args.job_dir or args.job_dir_arg


def add_step(p: argparse.ArgumentParser) -> None:
  """--step N: the checkpoint step to read (default: the newest intact one)."""
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: latest)')


def add_out(p: argparse.ArgumentParser, help: str) -> None:
  """--out PATH: where the command writes."""
  p.add_argument('--out', default=None, help=help)


def add_no_cache(p: argparse.ArgumentParser) -> None:
  """--no_compilation_cache: run without JAX's persistent compilation cache."""
  p.add_argument(
    NO_CACHE,
    dest='no_compilation_cache',
    action='store_true',
    help=f'do not use the persistent compilation cache ({compile_cache.cache_dir()})',
  )


def read_flags(
  argv: Iterable[str], names: Iterable[str] = (), prefixes: Iterable[str] = ()
) -> tuple[list[tuple[str, str | None]], list[str]]:
  """([(name, value)] of the flags named or prefixed, in argv order; argv without them).

  A flag is `--name=value` or `--name value` (the next argument is its value
  whatever it looks like, as absl reads a flag that takes a value); value is None
  when `--name` is the last argument. `prefixes` match families such as `fdl.`
  (`--fdl.ATTR=V` -> ('fdl.ATTR', 'V')).
  """
  argv, names, prefixes = list(argv), set(names), tuple(prefixes)
  found: list[tuple[str, str | None]] = []
  rest: list[str] = []
  i = 0
  while i < len(argv):
    arg = argv[i]
    name, sep, value = arg[2:].partition('=')
    if not arg.startswith('--') or not (name in names or (prefixes and name.startswith(prefixes))):
      rest.append(arg)
    elif sep:
      found.append((name, value))
    else:
      found.append((name, argv[i + 1] if i + 1 < len(argv) else None))
      i += 1
    i += 1
  return found, rest


def flag_value(argv: Iterable[str], name: str) -> str | None:
  """The value of flag `--name` in argv (either form; the last one wins, as absl), else None."""
  found, _ = read_flags(argv, [name])
  return found[-1][1] if found else None
