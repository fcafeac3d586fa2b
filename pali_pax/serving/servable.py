"""Servable configs in saxml's shape: serving settings of a PaLI experiment, in code.

saxml describes a served model by a `ServableModelParams` class with UPPERCASE
settings, registered by name. Ours is `PaliServable`:

  BATCH_SIZES       batch buckets, ascending: a gathered batch of n requests is padded to
                    the smallest bucket >= n, so one program per bucket is compiled
  MAX_INPUT_LEN     longest prompt in tokens (eos included); longer ones are refused
  MAX_DECODE_STEPS  tokens generated after the start id
  BEAM_SIZE         1 = greedy (the only mode the SavedModel export runs)
  BATCH_WAIT_MS     how long the server gathers concurrent requests into one batch
  QUANTIZE          None or 'int8' (per-channel int8 weights, `pali_pax.serving.int8`)

A setting left None is derived from the experiment (`derive`): MAX_INPUT_LEN =
INPUT_LEN, MAX_DECODE_STEPS = MAX_DECODE_LEN, BATCH_SIZES = powers of 4 below
EVAL_BATCH_SIZE plus EVAL_BATCH_SIZE. Every registered experiment has such a default
servable; a user's code overrides it by subclassing and registering:

  @servable.register
  class MyTiny(servable.PaliServable):
    EXPERIMENT = 'PaliTinySynthetic'
    BATCH_SIZES = (1, 8)
    BATCH_WAIT_MS = 20.0

  servable.servable_for('PaliTinySynthetic')   # -> MyTiny's settings (latest registered)
  servable.servable_for('runs/tiny')           # a job dir: its experiment + overrides
"""

import dataclasses
import os
from typing import Any

from pali_pax import job_config
from pali_pax.checkpoint import job_meta, layout
from pali_pax.core import errors
from pali_pax.fiddle_configs import registry

QUANTIZE_MODES = (None, 'int8')


class PaliServable:
  """Serving settings of one experiment (class attributes; None = from the experiment).

  Instances are resolved settings: every UPPERCASE attribute set, plus `experiment`
  (the experiment instance, overrides applied) and `job_dir` (None for a name).
  """

  EXPERIMENT: str | None = None  # registered experiment name this servable serves
  BATCH_SIZES: tuple[int, ...] | None = None
  MAX_INPUT_LEN: int | None = None
  MAX_DECODE_STEPS: int | None = None
  BEAM_SIZE: int = 1
  BATCH_WAIT_MS: float = 5.0
  QUANTIZE: str | None = None

  def __init__(self, experiment: Any, job_dir: str | None = None) -> None:
    self.experiment = experiment
    self.job_dir = job_dir
    for name, value in derive(experiment).items():
      if getattr(type(self), name) is None:
        setattr(self, name, value)
    self.BATCH_SIZES = tuple(int(b) for b in self.BATCH_SIZES)
    check(self)

  # ------------------------------------------------------------ derived facts
  @property
  def image_size(self) -> int:
    """Side in pixels of the model's square input image."""
    return int(self.experiment.IMAGE_SIZE)

  @property
  def vocab_path(self) -> str | None:
    """SentencePiece model of the experiment (None = the shipped synthetic one)."""
    return self.experiment.VOCAB_PATH

  @property
  def max_batch_size(self) -> int:
    """The largest bucket: the most requests one program call serves."""
    return self.BATCH_SIZES[-1]

  def bucket(self, n: int) -> int:
    """The smallest bucket holding `n` examples (InputValidationError above the largest)."""
    for b in self.BATCH_SIZES:
      if n <= b:
        return b
    raise errors.InputValidationError(
      f'{n} examples exceed the largest batch bucket {self.max_batch_size} of {self.name}'
    )

  @property
  def name(self) -> str:
    """The servable's class name (the registry key of user servables)."""
    return type(self).__name__

  def settings(self) -> dict[str, Any]:
    """The UPPERCASE settings as plain values (for metadata endpoints and logs)."""
    keys = ['EXPERIMENT', 'BATCH_SIZES', 'MAX_INPUT_LEN', 'MAX_DECODE_STEPS']
    keys += ['BEAM_SIZE', 'BATCH_WAIT_MS', 'QUANTIZE']
    out = {k: getattr(self, k) for k in keys}
    out['BATCH_SIZES'] = list(self.BATCH_SIZES)
    out['IMAGE_SIZE'] = self.image_size
    return out


def derive(experiment: Any) -> dict[str, Any]:
  """The defaults an experiment gives: {MAX_INPUT_LEN, MAX_DECODE_STEPS, BATCH_SIZES}."""
  largest = int(experiment.EVAL_BATCH_SIZE)
  buckets = [b for b in (1, 4, 16, 64, 256, 1024) if b < largest] + [largest]
  return {
    'MAX_INPUT_LEN': int(experiment.INPUT_LEN),
    'MAX_DECODE_STEPS': int(experiment.MAX_DECODE_LEN),
    'BATCH_SIZES': tuple(buckets),
  }


def check(s: PaliServable) -> None:
  """ConfigError naming the setting when a servable's settings cannot be served."""
  sizes = s.BATCH_SIZES
  if not sizes or any(b < 1 for b in sizes) or list(sizes) != sorted(set(sizes)):
    raise errors.ConfigError(f'{s.name}.BATCH_SIZES must be ascending positive ints, got {sizes}')
  for attr in ('MAX_INPUT_LEN', 'MAX_DECODE_STEPS', 'BEAM_SIZE'):
    value = getattr(s, attr)
    if not isinstance(value, int) or value < 1:
      raise errors.ConfigError(f'{s.name}.{attr} must be a positive int, got {value!r}')
  if not s.BATCH_WAIT_MS >= 0:
    raise errors.ConfigError(f'{s.name}.BATCH_WAIT_MS must be >= 0, got {s.BATCH_WAIT_MS!r}')
  if s.QUANTIZE not in QUANTIZE_MODES:
    raise errors.ConfigError(
      f'{s.name}.QUANTIZE must be one of {QUANTIZE_MODES}, got {s.QUANTIZE!r}'
    )


# --------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[PaliServable]] = {}  # servable class name -> class
_BY_EXPERIMENT: dict[str, type[PaliServable]] = {}  # experiment short name -> latest class


def _short(experiment: str) -> str:
  return experiment.rsplit('.', 1)[-1]


def register(cls: type[PaliServable]) -> type[PaliServable]:
  """Class decorator: registers a servable under its class name and for its EXPERIMENT.

  A later registration for the same experiment replaces the earlier one (a user's
  subclass replaces the default derived one).
  """
  if not (isinstance(cls, type) and issubclass(cls, PaliServable)):
    raise errors.ConfigError(f'{cls!r} is not a PaliServable subclass')
  if not cls.EXPERIMENT:
    raise errors.ConfigError(f'{cls.__name__}.EXPERIMENT must name a registered experiment')
  registry.get_experiment(cls.EXPERIMENT)  # unknown names fail here, listing the valid ones
  _REGISTRY[cls.__name__] = cls
  _BY_EXPERIMENT[_short(cls.EXPERIMENT)] = cls
  return cls


def servable_class(experiment: str) -> type[PaliServable]:
  """The servable class of a registered experiment: the user's, else a derived default."""
  short = _short(experiment)
  if short not in _BY_EXPERIMENT:
    registry.get_experiment(experiment)  # ConfigError when unknown
    default = type(f'{short}Servable', (PaliServable,), {'EXPERIMENT': experiment})
    default.__doc__ = f'Default servable of {short}: every setting derived from the experiment.'
    _BY_EXPERIMENT[short] = default
  return _BY_EXPERIMENT[short]


def names() -> list[str]:
  """Registered user servables plus one default per registered experiment, sorted."""
  return sorted(set(_REGISTRY) | {f'{n}Servable' for n in registry.names()})


def _is_job_dir(path: str) -> bool:
  job = str(layout.job_dir_of(path))
  return os.path.isdir(path) and os.path.exists(os.path.join(job, job_meta.METADATA_FILE))


@dataclasses.dataclass(frozen=True)
class _Source:
  experiment: str
  overrides: dict[str, Any]
  job_dir: str | None


def _source(name_or_job_dir: str) -> _Source:
  if _is_job_dir(name_or_job_dir):
    job = str(layout.job_dir_of(name_or_job_dir))
    exp, overrides = job_meta.read(job)
    return _Source(exp, overrides, job)
  if name_or_job_dir in _REGISTRY:
    return _Source(_REGISTRY[name_or_job_dir].EXPERIMENT, {}, None)
  if os.path.sep in name_or_job_dir or os.path.exists(name_or_job_dir):
    raise errors.MissingFileError(
      f'{name_or_job_dir} is no job dir (no {job_meta.METADATA_FILE}) and no experiment name'
    )
  return _Source(name_or_job_dir, {}, None)


def servable_for(name_or_job_dir: str, **settings: Any) -> PaliServable:
  """Resolved serving settings of a servable name, an experiment name or a job dir.

  Args:
    name_or_job_dir: a registered servable class name, a registered experiment name
      (short or module-qualified), or a job dir (its JOB/pali_pax.json names the
      experiment and overrides, e.g. written by `pali-pax train` or `convert`).
    **settings: UPPERCASE overrides for this instance (e.g. QUANTIZE='int8');
      unknown names are a ConfigError.
  """
  src = _source(name_or_job_dir)
  cls = _REGISTRY.get(name_or_job_dir) or servable_class(src.experiment)
  for key in settings:
    if not key.isupper() or not hasattr(PaliServable, key):
      raise errors.ConfigError(f'unknown servable setting {key!r}')
  if settings:
    cls = type(cls.__name__, (cls,), dict(settings))
  return cls(job_config.build(src.experiment, src.overrides), src.job_dir)
