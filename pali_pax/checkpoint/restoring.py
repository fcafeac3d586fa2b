"""Before paxml restores a job: corrupt or incomplete newest steps are moved aside.

`ensure_restorable(job_log_dir)` checks the newest step (split across the JAX
processes, `integrity.verify_here`): a corrupt or incomplete one is reported with
its path and the problems, moved by process 0 to `JOB/corrupt_checkpoints/`
(all processes wait at a barrier), and the next newest step is checked, so paxml
restores the newest intact one. Steps without manifests (written by plain
`paxml.main`) get structural checks only, with a warning.

`install()` (what `pali-pax train` calls before `paxml.main`) makes new saves
checksummed (`saving.install`) and runs `ensure_restorable` inside paxml where it
creates its checkpointer: after `jax.distributed.initialize`, so the processes
split the check and agree through a collective, and with the job dir paxml itself
resolved.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
from absl import logging
from etils import epath
from jax.experimental import multihost_utils
from paxml import eval_lib, train

from pali_pax.checkpoint import integrity, layout, saving
from pali_pax.core.errors import CorruptCheckpointError

QUARANTINE = 'corrupt_checkpoints'


def _quarantine(job_log_dir: epath.Path, step_dir: epath.Path) -> epath.Path:
  target_root = job_log_dir / QUARANTINE
  target_root.mkdir(parents=True, exist_ok=True)
  target = target_root / step_dir.name
  n = 1
  while target.exists():
    target, n = target_root / f'{step_dir.name}.{n}', n + 1
  step_dir.rename(target)
  return target


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def ensure_restorable(job_log_dir: epath.PathLike) -> int | None:
  """Moves corrupt newest steps aside; returns the step paxml will restore (None: none).

  Every process of the job calls it (the check is split between them).

  Raises:
    CorruptCheckpointError: checkpoints exist but none is intact.
  """
  job_log_dir = epath.Path(job_log_dir)
  moved = []
  for step, path in reversed(layout.step_dirs(layout.checkpoint_dir(job_log_dir))):
    problems, corrupt = integrity.verify_here(path)
    if not corrupt:
      if not (path / 'state').is_dir() or not integrity.read_parts(path / 'state')[0]:
        logging.warning('pali_pax: %s has no checksums; checked its structure only', path)
      if moved:
        logging.warning('pali_pax: resuming from intact step %d (%s)', step, path)
      return step
    report = '\n  '.join(problems or ['(found by another process)'])
    logging.error('pali_pax: checkpoint %s is corrupt or incomplete:\n  %s', path, report)
    if jax.process_index() == 0:
      target = _quarantine(job_log_dir, path)
      logging.error('pali_pax: moved %s to %s; trying the previous step', path, target)
    _barrier(f'pali_pax_quarantine_{step}')  # nobody lists the steps before the move
    moved.append(str(path))
  if moved:
    raise CorruptCheckpointError(
      f'no intact checkpoint in {layout.checkpoint_dir(job_log_dir)}: {", ".join(moved)} are '
      f'corrupt (moved to {job_log_dir / QUARANTINE}); rerun to start from step 0'
    )
  return None


def _guarded(create: Callable[..., Any], job_dir_of: Callable[..., Any]) -> Callable[..., Any]:
  @functools.wraps(create)
  def create_checkpointer(*args: Any, **kwargs: Any) -> Any:
    job_dir = job_dir_of(*args, **kwargs)
    if job_dir is not None:
      ensure_restorable(job_dir)
    return create(*args, **kwargs)

  create_checkpointer.pali_pax_guarded = True
  return create_checkpointer


def _train_job_dir(task_p: Any, job_log_dir: Any, *args: Any, **kwargs: Any) -> Any:
  return job_log_dir


def _eval_job_dir(**kwargs: Any) -> Any:
  # Only the job's own checkpoints: another job's (--restore_checkpoint_dir) are not ours to move.
  return None if kwargs.get('restore_checkpoint_dir') else kwargs.get('job_log_dir')


def install() -> None:
  """Checksummed saves, and `ensure_restorable` where paxml creates its checkpointer."""
  saving.install()
  if not getattr(train._create_checkpointer, 'pali_pax_guarded', False):
    train._create_checkpointer = _guarded(train._create_checkpointer, _train_job_dir)
  if not getattr(eval_lib._create_checkpointer, 'pali_pax_guarded', False):
    eval_lib._create_checkpointer = _guarded(eval_lib._create_checkpointer, _eval_job_dir)
