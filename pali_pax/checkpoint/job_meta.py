"""JOB/pali_pax.json: what a job dir was trained with (experiment, overrides, vocabulary).

Written when `pali-pax train`, `demo` or `convert` start a job; read back so that
`Predictor.from_checkpoint` and `pali-pax eval/predict` rebuild that model. This
module only reads and writes the file: turning the name into an experiment (the
registry) is `pali_pax.job_config.build`, a layer above.
"""

import json
import os
from typing import Any

from pali_pax.core.errors import ConfigError, FileFormatError, MissingFileError
from pali_pax.tasks import vocab as vocab_lib

METADATA_FILE = 'pali_pax.json'


def _from_json(value: Any) -> Any:
  """JSON has no tuples; experiment attributes hold tuples (meshes, task names)."""
  return tuple(_from_json(v) for v in value) if isinstance(value, list) else value


def vocabulary_info(exp: Any) -> dict[str, Any]:
  """{'path', 'size', 'model_vocab_size'} of an experiment; error when ids would overflow."""
  path = exp.VOCAB_PATH or vocab_lib.DEFAULT_VOCAB_PATH
  if not os.path.exists(path):
    raise MissingFileError(f'VOCAB_PATH {path} does not exist')
  size = int(vocab_lib.get_vocabulary(exp.VOCAB_PATH).vocab_size)
  if size > exp.VOCAB_SIZE:
    raise ConfigError(
      f'{type(exp).__name__}: the vocabulary {path} has {size} ids but VOCAB_SIZE is '
      f'{exp.VOCAB_SIZE}; set --fdl.VOCAB_SIZE={size} or --fdl.MODEL=tiny (shipped vocabulary)'
    )
  return {'path': os.path.abspath(path), 'size': size, 'model_vocab_size': int(exp.VOCAB_SIZE)}


def write(
  job_dir: str, experiment: str, overrides: dict[str, Any] | None, exp: Any, **extra: Any
) -> dict[str, Any]:
  """Records experiment `experiment` (built as `exp`), its overrides and vocabulary.

  Keys recorded earlier (e.g. a conversion's `sources`) are kept.
  """
  path = os.path.join(job_dir, METADATA_FILE)
  meta: dict[str, Any] = {}
  if os.path.exists(path):
    with open(path) as f:
      meta = json.load(f)
  meta.update(
    experiment=experiment,
    overrides=dict(overrides or {}),
    vocabulary=vocabulary_info(exp),
    **extra,
  )
  os.makedirs(job_dir, exist_ok=True)
  with open(path, 'w') as f:
    json.dump(meta, f, indent=1)
  return meta


def read(job_dir: str) -> tuple[str, dict[str, Any]]:
  """(experiment name, overrides) recorded in a job dir (clear error when missing)."""
  path = os.path.join(job_dir, METADATA_FILE)
  if not os.path.exists(path):
    # A ConfigError (a ValueError, as before): the fix is to name the experiment.
    raise ConfigError(
      f'{job_dir} has no {METADATA_FILE} (written when `pali-pax train`, `demo` or '
      '`convert` start a job); pass experiment=NAME and overrides'
    )
  with open(path) as f:
    try:
      meta = json.load(f)
    except json.JSONDecodeError as e:
      raise FileFormatError(f'{path} is not valid JSON: {e}') from e
  if 'experiment' not in meta:
    raise FileFormatError(f'{path} names no experiment')
  overrides = {k: _from_json(v) for k, v in meta.get('overrides', {}).items()}
  return meta['experiment'], overrides
