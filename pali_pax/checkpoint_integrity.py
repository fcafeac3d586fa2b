"""Checkpoint integrity: SHA-256 checksums written at save, verified before restore.

Orbax 0.5.9 / tensorstore store each array as zstd-compressed zarr chunks with no
checksum: a flipped byte restores silently as wrong values and a deleted chunk as
zeros. So:

- Save. `ChecksummedPaxCheckpointHandler` is paxml's `PaxCheckpointHandler` plus
  orbax's `finalize` hook, which orbax calls on the primary process after every
  process has written its shards and before the step directory is renamed into
  place. It writes `MANIFEST` (size and SHA-256 of every file of the item) into
  the item directory, so a step that is visible at all has its checksums.
  `install()` makes paxml's checkpointer use it (`pali-pax train` does this).
- Restore. `ensure_restorable(job_log_dir)` checks the newest step before paxml
  lists the checkpoints: paxml's `metadata/metadata` parses, every file of
  `state/` has its recorded size and checksum and none is missing or extra. A
  corrupt or incomplete step is reported with its path and the problems, moved
  to `<job_log_dir>/corrupt_checkpoints/`, and the next newest step is checked,
  so paxml restores the newest intact one. Steps without a manifest (written by
  plain `paxml.main`) get structural checks only, with a warning.

Only `checkpoint_<8 digits>` directories are steps: orbax's unfinished
`*.orbax-checkpoint-tmp-*` directories are never read (orbax deletes them).
"""

import hashlib
import json
import re
import time
from typing import Any

from absl import logging
from etils import epath
from paxml import checkpoint_creators, checkpoints

MANIFEST = 'pali_pax_checksums.json'
FORMAT = 'pali_pax.checksums.v1'
QUARANTINE = 'corrupt_checkpoints'
STEP_DIR = re.compile(r'checkpoint_(\d{8})')
_BLOCK = 1 << 20


class CorruptCheckpointError(ValueError):
  """A checkpoint is corrupt or incomplete and no intact step remains."""


def _sha256(path: epath.Path) -> str:
  h = hashlib.sha256()
  with path.open('rb') as f:
    while block := f.read(_BLOCK):
      h.update(block)
  return h.hexdigest()


def _files(root: epath.Path) -> dict[str, epath.Path]:
  """Relative path -> path of every file under `root` (the manifest excluded; gs:// too)."""
  out, pending = {}, [(root, '')]
  while pending:
    folder, prefix = pending.pop()
    for entry in folder.iterdir():
      rel = f'{prefix}{entry.name}'
      if entry.is_dir():
        pending.append((entry, f'{rel}/'))
      elif rel != MANIFEST:
        out[rel] = entry
  return out


def write_manifest(item_dir: epath.PathLike) -> epath.Path:
  """Writes MANIFEST (size + SHA-256 of every file) into `item_dir`; returns its path."""
  item_dir = epath.Path(item_dir)
  files = {
    rel: {'size': path.stat().length, 'sha256': _sha256(path)}
    for rel, path in sorted(_files(item_dir).items())
  }
  target = item_dir / MANIFEST
  tmp = item_dir / f'{MANIFEST}.tmp'
  tmp.write_text(json.dumps({'format': FORMAT, 'files': files}, indent=0))
  tmp.rename(target)
  return target


class ChecksummedPaxCheckpointHandler(checkpoints.PaxCheckpointHandler):
  """paxml's handler; `finalize` (primary process, all shards written) adds MANIFEST."""

  def finalize(self, directory: epath.Path) -> None:
    super().finalize(directory)
    write_manifest(directory)
    logging.info('pali_pax: wrote checksums of %s', directory)


def install() -> None:
  """Makes paxml's checkpointers (train loop and `checkpoints.save_checkpoint`) checksum."""
  checkpoints.PaxCheckpointHandler = ChecksummedPaxCheckpointHandler
  checkpoint_creators.PaxCheckpointHandler = ChecksummedPaxCheckpointHandler


def _read_json(path: epath.Path) -> Any:
  return json.loads(path.read_text())


def _verify_manifest(state: epath.Path, manifest: epath.Path) -> list[str]:
  try:
    recorded = _read_json(manifest)
    entries = recorded['files']
    if recorded.get('format') != FORMAT or not isinstance(entries, dict):
      raise ValueError(f'format is not {FORMAT}')
  except (ValueError, KeyError, TypeError) as e:
    return [f'{manifest}: unreadable checksums ({e})']
  present = _files(state)
  problems = [f'{state / rel}: missing' for rel in sorted(set(entries) - set(present))]
  problems += [
    f'{state / rel}: not in the checksums' for rel in sorted(set(present) - set(entries))
  ]
  for rel in sorted(set(entries) & set(present)):
    path, want = present[rel], entries[rel]
    size = path.stat().length
    if size != want['size']:
      problems.append(f'{path}: {size} bytes, {want["size"]} were written')
    elif _sha256(path) != want['sha256']:
      problems.append(f'{path}: checksum mismatch (contents changed since the save)')
  return problems


def _verify_structure(state: epath.Path) -> list[str]:
  """What can be checked without checksums: every array dir has a readable .zarray."""
  problems, arrays = [], 0
  for entry in state.iterdir():
    if entry.is_dir():
      arrays += 1
      try:
        _read_json(entry / '.zarray')
      except (OSError, ValueError) as e:
        problems.append(f'{entry / ".zarray"}: unreadable array metadata ({e})')
  if not arrays:
    problems.append(f'{state}: holds no arrays')
  return problems


def verify_step(step_dir: epath.PathLike) -> tuple[list[str], bool]:
  """(problems, checksummed) of one step directory; no problems = safe to restore."""
  step_dir = epath.Path(step_dir)
  if not step_dir.is_dir():
    return [f'{step_dir}: not a directory'], False
  problems = []
  meta = step_dir / 'metadata' / 'metadata'
  try:
    _read_json(meta)
  except (OSError, ValueError) as e:
    problems.append(f'{meta}: missing or unreadable paxml metadata ({type(e).__name__}: {e})')
  state = step_dir / 'state'
  if not state.is_dir():
    return [*problems, f'{state}: missing (no arrays)'], False
  manifest = state / MANIFEST
  if manifest.exists():
    return problems + _verify_manifest(state, manifest), True
  return problems + _verify_structure(state), False


def step_dirs(checkpoint_dir: epath.PathLike) -> list[tuple[int, epath.Path]]:
  """(step, dir) of every finished step in a paxml checkpoints dir, oldest first.

  Unfinished saves (`*.orbax-checkpoint-tmp-*`) and other entries are skipped.
  """
  checkpoint_dir = epath.Path(checkpoint_dir)
  if not checkpoint_dir.is_dir():
    return []
  out = []
  for entry in checkpoint_dir.iterdir():
    m = STEP_DIR.fullmatch(entry.name)
    if m and entry.is_dir():
      out.append((int(m.group(1)), entry))
  return sorted(out)


def _quarantine(job_log_dir: epath.Path, step_dir: epath.Path) -> epath.Path:
  target_root = job_log_dir / QUARANTINE
  target_root.mkdir(parents=True, exist_ok=True)
  target = target_root / step_dir.name
  n = 1
  while target.exists():
    target, n = target_root / f'{step_dir.name}.{n}', n + 1
  step_dir.rename(target)
  return target


def ensure_restorable(
  job_log_dir: epath.PathLike, primary: bool = True, wait_s: float = 600.0
) -> int | None:
  """Moves corrupt newest steps aside; returns the step paxml will restore (None: none).

  Args:
    job_log_dir: the paxml job dir (holding checkpoints/).
    primary: this process moves corrupt steps; others (multi-host) wait for it.
    wait_s: how long a non-primary process waits for the primary's moves.

  Raises:
    CorruptCheckpointError: checkpoints exist but none is intact.
  """
  job_log_dir = epath.Path(job_log_dir)
  steps = step_dirs(job_log_dir / 'checkpoints')
  moved = []
  for step, path in reversed(steps):
    problems, checksummed = verify_step(path)
    if not problems:
      if not checksummed:
        logging.warning('pali_pax: %s has no checksums; checked its structure only', path)
      if moved:
        logging.warning('pali_pax: resuming from intact step %d (%s)', step, path)
      return step
    report = '\n  '.join(problems)
    logging.error('pali_pax: checkpoint %s is corrupt or incomplete:\n  %s', path, report)
    if primary:
      target = _quarantine(job_log_dir, path)
      logging.error('pali_pax: moved %s to %s; trying the previous step', path, target)
    else:
      deadline = time.time() + wait_s
      while path.exists() and time.time() < deadline:
        time.sleep(1.0)
      if path.exists():
        raise CorruptCheckpointError(f'{path} is corrupt and process 0 did not move it aside')
    moved.append(str(path))
  if moved:
    raise CorruptCheckpointError(
      f'no intact checkpoint in {job_log_dir / "checkpoints"}: {", ".join(moved)} are corrupt '
      f'(moved to {job_log_dir / QUARANTINE}); rerun to start from step 0'
    )
  return None


def _flag(argv: list[str], name: str) -> str | None:
  """Value of absl flag `--name=V` / `--name V` in argv (last one wins), else None."""
  value = None
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      value = arg.split('=', 1)[1]
    elif arg == f'--{name}' and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def prepare_paxml_run(argv: list[str]) -> None:
  """Before `paxml.main ARGV`: checksum new saves; restore only an intact step of --job_log_dir.

  Process 0 (paxml's `--host_idx`, default 0) moves corrupt steps aside; the others wait.
  """
  install()
  job_log_dir = _flag(argv, 'job_log_dir')
  if job_log_dir:
    ensure_restorable(job_log_dir, primary=int(_flag(argv, 'host_idx') or 0) == 0)
