"""What a job dir was trained with, as an experiment: JOB/pali_pax.json + the registry.

`pali-pax train` resolves its flags (`pali_pax.cli.train.resolve_flags`) to one
experiment name plus one dict of overrides before paxml starts; `write` validates
them (the experiment is constructed: unknown attributes and a vocabulary larger
than VOCAB_SIZE fail at once) and records them in JOB/pali_pax.json
(`pali_pax.checkpoint.job_meta` reads and writes the file).

`experiment_of(job_dir)` rebuilds that experiment and `load_model_params` its
trained params, so that `Predictor.from_checkpoint`, `pali-pax eval/predict/export`
use the model the job was trained as.
"""

from typing import Any

from pali_pax.checkpoint import frozen, job_meta, layout, reading
from pali_pax.checkpoint.job_meta import METADATA_FILE, read
from pali_pax.fiddle_configs import registry, trainable

__all__ = ['METADATA_FILE', 'build', 'experiment_of', 'load_model_params', 'read', 'write']


def build(experiment: str, overrides: dict[str, Any] | None = None) -> Any:
  """The experiment instance (registry lookup + overrides, validated by its constructor)."""
  return registry.get_experiment(experiment)(**(overrides or {}))


def write(
  job_dir: str, experiment: str, overrides: dict[str, Any] | None, **extra: Any
) -> dict[str, Any]:
  """Records the job's experiment, overrides and vocabulary; keeps other recorded keys.

  A LoRA fine-tune of INIT_FROM also records its base step (`frozen.KEY`): its
  checkpoints leave out the frozen params (`trainable.base_record`).
  """
  exp = build(experiment, overrides)
  record = trainable.base_record(exp, job_dir)
  if record is not None or frozen.of_job(job_dir) is not None:
    extra.setdefault(frozen.KEY, record)
  return job_meta.write(job_dir, experiment, overrides, exp, **extra)


def experiment_of(
  job_dir: str, experiment: str | None = None, overrides: dict[str, Any] | None = None
) -> Any:
  """The experiment instance of JOB (or JOB/checkpoints): `experiment` + `overrides` if
  given, else the ones recorded in JOB/pali_pax.json."""
  if experiment is None:
    experiment, overrides = read(str(layout.job_dir_of(job_dir)))
  return build(experiment, overrides)


def load_model_params(
  job_dir: str,
  experiment: str | None = None,
  step: int | None = None,
  overrides: dict[str, Any] | None = None,
) -> tuple[Any, dict]:
  """(experiment instance, `params` of checkpoint `step` (None: newest intact)) of a job dir.

  The experiment and its overrides come from JOB/pali_pax.json unless `experiment`
  is given. Raises CheckpointMismatchError naming the variable when the checkpoint
  does not fit that experiment's model.
  """
  exp = experiment_of(job_dir, experiment, overrides)
  return exp, reading.restore_params(exp, job_dir, step)
