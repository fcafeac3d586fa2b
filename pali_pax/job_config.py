"""What a job dir was trained with: experiment, overrides, vocabulary (JOB/pali_pax.json).

`pali-pax train` resolves its flags here before paxml starts:

  --exp=NAME --fdl.ATTR=VALUE ...                 (our short form)
  --fdl_config=pali_pax.fiddle_configs.experiments.experiment_config('NAME') --fdl.ATTR=VALUE
  --fdl_config=pali_pax.fiddle_configs.experiments.tiny_synthetic --fdl.ATTR=VALUE

all become one experiment name plus one dict of overrides, which is validated
(the experiment is constructed: unknown attributes and a vocabulary larger than
VOCAB_SIZE fail at once), recorded in JOB/pali_pax.json, and handed to paxml as
`--fdl_config=...experiment_config('NAME') --fdl.ATTR=repr(value)` (the Fiddle
form paxml 1.4 applies). VALUE is a Python literal as in Fiddle
(`--fdl.NUM_TRAIN_STEPS=200`, `--fdl.ICI_MESH_SHAPE=(1,1,1)`, true / false); a
value that is not a literal is taken as a string (`--fdl.DATA_DIR=/data/coco`,
`--fdl.MODEL=tiny`).

`read(job_dir)` gives back (experiment name, overrides) so that
`Predictor.from_checkpoint` and `pali-pax eval/predict` rebuild that model.
"""

import ast
import json
import os
import re
from typing import Any

from pali_pax.core.errors import FileFormatError

METADATA_FILE = 'pali_pax.json'
EXPERIMENTS_MODULE = 'pali_pax.fiddle_configs.experiments'
_CALL = re.compile(r'^(?:pali_pax\.fiddle_configs\.experiments\.)?(\w+)(?:\((.*)\))?$', re.S)


def parse_value(text: str) -> Any:
  """A `--fdl.ATTR=` value: true / false, a Python literal, else the string itself."""
  if text.lower() in ('true', 'false'):
    return text.lower() == 'true'
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _from_json(value: Any) -> Any:
  """JSON has no tuples; experiment attributes hold tuples (meshes, task names)."""
  return tuple(_from_json(v) for v in value) if isinstance(value, list) else value


def _fdl_config_target(spec: str) -> tuple[str, dict[str, Any]]:
  """(experiment, overrides) of `--fdl_config=<our module>.fn(...)`."""
  from pali_pax.fiddle_configs import experiments

  m = _CALL.match(spec.strip())
  fn = getattr(experiments, m.group(1), None) if m else None
  if fn is None or not callable(fn):
    raise ValueError(
      f'--fdl_config={spec}: pali-pax train reads functions of {EXPERIMENTS_MODULE} '
      "(experiment_config('NAME') or tiny_synthetic); use --exp=NAME --fdl.ATTR=VALUE"
    )
  call = ast.parse(f'f({m.group(2) or ""})', mode='eval').body
  args = [ast.literal_eval(a) for a in call.args]
  kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
  cfg = fn(*args, **kwargs)
  return cfg.__fn_or_cls__.__name__, dict(cfg.__arguments__)


def resolve_flags(argv: list[str]) -> tuple[str | None, dict[str, Any], list[str]]:
  """(experiment, overrides, paxml argv) of `pali-pax train` flags.

  Returns experiment None (and argv unchanged) when neither --exp nor
  --fdl_config names one of our experiments (e.g. --fdl_config_file).
  """
  experiment, overrides, rest = None, {}, []
  for arg in argv:
    if arg.startswith('--exp='):
      experiment = arg[len('--exp=') :].removeprefix(EXPERIMENTS_MODULE + '.')
    elif arg.startswith('--fdl_config='):
      experiment, base = _fdl_config_target(arg[len('--fdl_config=') :])
      overrides = {**base, **overrides}
    elif arg.startswith('--fdl.'):
      name, sep, value = arg[len('--fdl.') :].partition('=')
      if not sep:
        raise ValueError(f'{arg}: write --fdl.ATTR=VALUE')
      overrides[name] = parse_value(value)
    else:
      rest.append(arg)
  if experiment is None:
    if overrides:
      raise ValueError('--fdl.ATTR=VALUE needs --exp=NAME (or --fdl_config=...)')
    return None, {}, list(argv)
  if '.' in experiment:  # another package's experiment: paxml resolves it itself
    if overrides:
      raise ValueError(f'--exp={experiment}: --fdl.* overrides apply to our experiments only')
    return None, {}, list(argv)
  paxml_argv = [f"--fdl_config={EXPERIMENTS_MODULE}.experiment_config('{experiment}')"]
  paxml_argv += [f'--fdl.{k}={v!r}' for k, v in overrides.items()]
  return experiment, overrides, paxml_argv + rest


def vocabulary_info(exp: Any) -> dict[str, Any]:
  """{'path', 'size', 'model_vocab_size'} of an experiment; error when ids would overflow."""
  from pali_pax.tasks import vocab as vocab_lib

  path = exp.VOCAB_PATH or vocab_lib.DEFAULT_VOCAB_PATH
  if not os.path.exists(path):
    raise FileNotFoundError(f'VOCAB_PATH {path} does not exist')
  size = int(vocab_lib.get_vocabulary(exp.VOCAB_PATH).vocab_size)
  if size > exp.VOCAB_SIZE:
    raise ValueError(
      f'{type(exp).__name__}: the vocabulary {path} has {size} ids but VOCAB_SIZE is '
      f'{exp.VOCAB_SIZE}; set --fdl.VOCAB_SIZE={size} or --fdl.MODEL=tiny (shipped vocabulary)'
    )
  return {'path': os.path.abspath(path), 'size': size, 'model_vocab_size': int(exp.VOCAB_SIZE)}


def build(experiment: str, overrides: dict[str, Any] | None = None) -> Any:
  """The experiment instance (registry lookup + overrides, validated by its constructor)."""
  from pali_pax.fiddle_configs import registry

  return registry.get_experiment(experiment)(**(overrides or {}))


def write(
  job_dir: str, experiment: str, overrides: dict[str, Any] | None, **extra: Any
) -> dict[str, Any]:
  """Records the job's experiment, overrides and vocabulary; keeps other recorded keys."""
  exp = build(experiment, overrides)
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
    raise ValueError(
      f'{job_dir} has no {METADATA_FILE} (written when `pali-pax train`, `demo` or '
      '`convert` start a job); pass experiment=NAME and overrides'
    )
  with open(path) as f:
    try:
      meta = json.load(f)
    except json.JSONDecodeError as e:
      raise FileFormatError(f'{path} is not valid JSON: {e}') from e
  if 'experiment' not in meta:
    raise ValueError(f'{path} names no experiment')
  overrides = {k: _from_json(v) for k, v in meta.get('overrides', {}).items()}
  return meta['experiment'], overrides
