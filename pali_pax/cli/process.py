"""What `pali-pax` does as a process's own entry point (console script, `python -m pali_pax.cli`).

What `pali-pax` sets for the process it runs in, not for any one command:

- Python's cyclic garbage collector during the imports. The imports (jax, praxis,
  paxml, seqio, TensorFlow) create ~600,000 long-lived objects, and each full
  collection walks all of them again: a warm `pali-pax predict` spent about 15% of
  its wall time in the collector (`gc.callbacks`, 2-core Xeon). `imports_done`
  is called when the command's module is imported: the collector stays off until
  then, and what the imports made is frozen (`gc.freeze`: left out of every later
  collection; module-level objects live as long as the process anyway). Later
  garbage is collected as usual, so a long `train` keeps its memory bounded.
- Interpreter teardown: at exit Python collects and frees that whole heap, module
  by module, which took 2-5 s of a warm `predict` on a loaded machine. A command
  that only prints (`FAST_EXIT`) leaves with `os._exit` once its output is flushed;
  the commands that write files or checkpoints exit normally, so every atexit
  handler still runs for them.
- TensorFlow's graph optimiser (Grappler). In the commands of `INPUT_ONLY_TF`,
  TensorFlow runs nothing but tf.data input pipelines, and Grappler rewrote the train
  input's ~9,000-op function at every start for ~0.8 s of the ~2 s its iterator takes
  to open (2-core Xeon), for a function that then runs in ~30 ms per 1,024 rows. It is
  off in those processes (`imports_done`): the batches are bit-identical either way.
  `serve` and `export` keep it: there TensorFlow runs the model (SavedModel).

- Page faults of XLA CPU's per-run buffers: glibc hands a freed multi-GiB temp buffer
  back to the kernel after every train step, and the next step faults it in again
  (`pali_pax.core.host_memory`); `manage()` keeps freed memory in the process.

`manage()` turns these on; `pali_pax.cli.main` calls it only when it runs the
process (no argv given). Called with an argv (tests, other programs), nothing here
changes the caller's process.
"""

import gc
import logging
import os
import sys
from typing import NoReturn

from pali_pax.core import host_memory

# Commands whose whole result is what they print: nothing is left to finish at exit.
FAST_EXIT = frozenset({'predict', 'experiments', 'params', 'tasks'})
# Commands whose TensorFlow runs input pipelines only.
INPUT_ONLY_TF = frozenset({'train', 'demo', 'eval'})

_state = {'managed': False, 'held': False}


def manage() -> None:
  """This process is `pali-pax`'s: the collector is held off until `imports_done`."""
  _state['managed'] = True
  host_memory.keep_freed_memory()  # before any thread that allocates is started
  if gc.isenabled():
    gc.disable()
    _state['held'] = True


def managed() -> bool:
  """Whether `manage()` was called in this process."""
  return _state['managed']


def imports_done(command: str) -> None:
  """`command`'s modules are imported: freeze what they made, collect from now on; Grappler
  off for an `INPUT_ONLY_TF` command (before TensorFlow's runtime starts: later, the
  setting would not reach tf.data's functions)."""
  if _state['held']:
    gc.freeze()
    gc.enable()
    _state['held'] = False
  if _state['managed'] and command in INPUT_ONLY_TF:
    import tensorflow as tf  # the command's modules imported it already

    tf.config.optimizer.set_experimental_options({'disable_meta_optimizer': True})


def exit_now(code: int) -> NoReturn:
  """Ends the process with `code` after flushing output, without interpreter teardown."""
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):  # closed or broken pipe: nothing more can be written
      pass
  logging.shutdown()  # flushes every log handler (absl's too), as atexit would
  os._exit(code)
