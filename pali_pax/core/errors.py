"""The errors pali_pax raises for bad input: one base class, one subclass per kind.

Every error whose cause is something the user gave (a file, a config, an
argument) is a `PaliPaxError` whose message names that input, so callers (the
CLI, a fuzz test) can tell "your input is wrong" from a bug with one `except`.
Each subclass also derives from the built-in type such errors were raised as
before, so an existing `except ValueError` still catches them.

    PaliPaxError
    ├── CheckpointMismatchError   a readable checkpoint that does not fit the model (names the tensor)
    ├── CorruptCheckpointError    a checkpoint whose bytes fail their checksums, with no intact step
    ├── FileFormatError           a checkpoint / config / vocabulary / data file that cannot be parsed
    │   └── tasks.readers_common.DataFormatError   a data set file (COCO, VQA, JSONL) in a bad format
    ├── InputValidationError      an argument of the Predictor, a layer call or the CLI (names it)
    │   └── serving.request_checks.BadRequestError   a predict request the server refuses (HTTP 400 / 413)
    ├── ConfigError               an experiment attribute or layer setting (names the attribute)
    └── MissingFileError          a file or folder named by the user or a data file does not exist

All but MissingFileError (a FileNotFoundError) also derive from ValueError. A test
(tests/pali_pax/core/test_errors.py) checks that this tree names every subclass.
"""

import contextlib
import os
import zipfile
from collections.abc import Iterator


class PaliPaxError(Exception):
  """Base of the errors about user input; the message names the input."""


class CheckpointMismatchError(PaliPaxError, ValueError):
  """A checkpoint does not fit the model it is being loaded into (names the tensor)."""


class CorruptCheckpointError(PaliPaxError, ValueError):
  """A checkpoint is corrupt or incomplete and no intact step remains (names the step)."""


class FileFormatError(PaliPaxError, ValueError):
  """A file is malformed or not in the format expected of it (names the file)."""


# What parsers raise on malformed bytes: json (JSONDecodeError), msgpack (ExtraData ...),
# numpy / zipfile (.npz, torch .bin), UTF-8 decoding, and indexing a structure that is not
# the expected one. Libraries with their own error classes pass them as `extra`.
# RecursionError: json / msgpack on pathologically nested input.
_PARSE_ERRORS = (
  ValueError,
  TypeError,
  KeyError,
  IndexError,
  EOFError,
  RecursionError,
  zipfile.BadZipFile,
)


@contextlib.contextmanager
def parsing(
  path: str | os.PathLike, what: str, extra: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
  """Re-raises a parser's error on a malformed file as FileFormatError naming the file.

      with errors.parsing(file, 'safetensors file', (SafetensorError,)):
        tensors = load_file(file)

  Args:
    path: the file being read.
    what: what it should be, for the message ('T5X msgpack checkpoint').
    extra: further exception types the parser raises on bad content.

  Raises:
    FileFormatError: from the parser's error (chained). Our own errors and
      OSError (a missing or unreadable file names itself) pass through.
  """
  try:
    yield
  except PaliPaxError:
    raise
  except (*_PARSE_ERRORS, *extra) as e:
    raise FileFormatError(f'{os.fspath(path)}: not a valid {what} ({type(e).__name__}: {e})') from e


# Errors about inputs other than checkpoint files (pali_pax.validation and the data readers).


class InputValidationError(PaliPaxError, ValueError):
  """An argument to the Predictor or the CLI is invalid (names the argument and the value)."""


class ConfigError(PaliPaxError, ValueError):
  """An experiment attribute is invalid or contradicts the machine (names the attribute)."""


class MissingFileError(PaliPaxError, FileNotFoundError):
  """A file or folder the user named (or a data file names) does not exist (names the path)."""
