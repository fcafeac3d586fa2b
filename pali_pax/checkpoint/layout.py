"""Where a paxml job dir keeps its checkpoints, and what a step directory holds.

    JOB/checkpoints/checkpoint_<8 digits>/metadata/metadata   paxml's metadata (JSON)
    JOB/checkpoints/checkpoint_<8 digits>/state/<array>/      one zarr array per variable:
                                                              .zarray (shape, dtype) + chunks
    JOB/checkpoints/checkpoint_<N>.orbax-checkpoint-tmp-<t>   an unfinished save (never a step)

A model variable `params/vit/pos_embedding` is the array folder
`mdl_vars.params.vit.pos_embedding`. Everything here reads metadata only, except
`read_saved_array`.
"""

import json
import os
import re

import numpy as np
import tensorstore as ts
from etils import epath

from pali_pax.core.errors import FileFormatError, MissingFileError

CHECKPOINTS = 'checkpoints'
# paxml's GDA step folders: exactly 8 digits (orbax's tmp folders do not fullmatch).
STEP_DIR = re.compile(r'checkpoint_(\d{8})')
_VARS_PREFIX = 'mdl_vars.'


def checkpoint_dir(job_dir: epath.PathLike) -> epath.Path:
  """JOB/checkpoints of a job dir; a path that already is a checkpoints dir is kept."""
  path = epath.Path(os.fspath(job_dir).rstrip('/'))
  return path if path.name == CHECKPOINTS else path / CHECKPOINTS


def job_dir_of(path: epath.PathLike) -> epath.Path:
  """The job dir of JOB or JOB/checkpoints."""
  path = epath.Path(os.fspath(path).rstrip('/'))
  return path.parent if path.name == CHECKPOINTS else path


def step_path(ckpt_dir: epath.PathLike, step: int) -> epath.Path:
  """CKPT_DIR/checkpoint_<step, 8 digits>."""
  return epath.Path(ckpt_dir) / f'checkpoint_{step:08d}'


def step_dirs(ckpt_dir: epath.PathLike) -> list[tuple[int, epath.Path]]:
  """(step, dir) of every finished step in a paxml checkpoints dir, oldest first.

  Unfinished saves (`*.orbax-checkpoint-tmp-*`) and other entries are skipped.
  """
  ckpt_dir = epath.Path(ckpt_dir)
  if not ckpt_dir.is_dir():
    return []
  out = []
  for entry in ckpt_dir.iterdir():
    m = STEP_DIR.fullmatch(entry.name)
    if m and entry.is_dir():
      out.append((int(m.group(1)), entry))
  return sorted(out)


def step_of(path: epath.PathLike) -> int | None:
  """The step of a step directory's path (`checkpoint_00000120` -> 120), else None."""
  m = STEP_DIR.fullmatch(epath.Path(path).name)
  return int(m.group(1)) if m else None


def all_steps(job_dir: epath.PathLike) -> list[int]:
  """Steps of the finished checkpoints of JOB (or JOB/checkpoints), oldest first."""
  return [step for step, _ in step_dirs(checkpoint_dir(job_dir))]


def latest_step(job_dir: epath.PathLike) -> int | None:
  """Step of the newest finished checkpoint (not verified: see `reading.intact_latest_step`)."""
  steps = all_steps(job_dir)
  return steps[-1] if steps else None


def saved_shapes(step_dir: epath.PathLike) -> dict[str, tuple[int, ...]]:
  """{'params/vit/pos_embedding': shape, ...} of the model variables saved in one step.

  Read from the zarr metadata orbax writes (state/mdl_vars.<name>/.zarray), no data.

  Raises:
    FileFormatError: no state/ folder, no model variable, or an unreadable .zarray.
  """
  state = epath.Path(step_dir) / 'state'
  if not state.is_dir():
    raise FileFormatError(f'{step_dir} is not a Pax checkpoint (no state/ folder)')
  out = {}
  for array_dir in state.iterdir():
    if not array_dir.name.startswith(_VARS_PREFIX):
      continue
    zarray = array_dir / '.zarray'
    try:
      shape = tuple(json.loads(zarray.read_text())['shape'])
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise FileFormatError(f'{zarray}: not a readable zarr array header ({e})') from e
    out[array_dir.name[len(_VARS_PREFIX) :].replace('.', '/')] = shape
  if not out:
    raise FileFormatError(f'{state} holds no model variables (mdl_vars.*)')
  return out


def read_saved_array(step_dir: epath.PathLike, name: str) -> np.ndarray:
  """One saved model variable (e.g. 'params/vit/pos_embedding') as numpy, read with tensorstore."""
  path = epath.Path(step_dir) / 'state' / (_VARS_PREFIX + name.replace('/', '.'))
  if not (path / '.zarray').exists():
    raise MissingFileError(f'{step_dir} holds no saved variable {name!r} ({path})')
  text = os.fspath(path)
  if text.startswith('gs://'):
    bucket, _, key = text[len('gs://') :].partition('/')
    kvstore = {'driver': 'gcs', 'bucket': bucket, 'path': key}
  else:
    kvstore = {'driver': 'file', 'path': text}
  return np.asarray(ts.open({'driver': 'zarr', 'kvstore': kvstore}).result().read().result())
