"""Lookup and listing of the registered PaLI experiments."""

from paxml import experiment_registry

from pali_pax.core import errors
from pali_pax.fiddle_configs import experiments
from pali_pax.tasks import finetune_tasks

_PREFIX = experiments.__name__ + '.'


def names() -> list[str]:
  """Short class names of our registered experiments, sorted."""
  return sorted(k[len(_PREFIX) :] for k in experiment_registry.get_all() if k.startswith(_PREFIX))


def get_experiment(name: str) -> type[experiments.PaliExperiment]:
  """Experiment class by short or module-qualified name (clear error if unknown)."""
  cls = experiment_registry.get(name if '.' in name else _PREFIX + name)
  if cls is None:
    raise errors.ConfigError(f'unknown experiment {name!r}; registered: {names()}')
  return cls


def describe_experiments() -> str:
  """One line per experiment: name, model, resolution, batch, mesh, docstring."""
  lines = [f'{"experiment":<32}{"model":<7}{"px":>5}{"batch":>7}  mesh (ici x dcn)  what']
  for name in names():
    cls = get_experiment(name)
    doc = (cls.__doc__ or '').strip().split('\n')[0]
    mesh = f'{list(cls.ICI_MESH_SHAPE)}x{list(cls.DCN_MESH_SHAPE or [1, 1, 1])}'
    lines.append(
      f'{name:<32}{cls.MODEL:<7}{cls.IMAGE_SIZE:>5}{cls.BATCH_SIZE:>7}  {mesh:<17} {doc}'
    )
  lines.append(
    f'\nrun: pali-pax train --exp=NAME --job_log_dir=DIR  (= python -m paxml.main --exp={_PREFIX}NAME ...)'
  )
  return '\n'.join(lines)


def describe_finetune_families() -> str:
  """Every fine-tune experiment, its seqio task and how to point it at data."""
  lines = ['fine-tune experiments (their tasks are registered from DATA_DIR when they run):']
  for name, cls in sorted(experiments.finetune_families().items()):
    _, layout = finetune_tasks.FAMILIES[cls.DATASET]
    line = f'  {name:<30} task {cls.TRAIN_MIXTURE:<20} model {cls.MODEL:<5} DATA_DIR: {layout}'
    if cls.EVAL_DATASET:
      line += f'; EVAL_DATA_DIR ({cls.EVAL_SPLIT}): {finetune_tasks.FAMILIES[cls.EVAL_DATASET][1]}'
    lines.append(line)
  lines.append(
    'run: pali-pax train --exp=PaliFinetuneCocoCaptionsTiny --fdl.DATA_DIR=/data/coco '
    '--job_log_dir=runs/coco  (pod sizes: also --fdl.VOCAB_PATH=mt5.spm --fdl.INIT_FROM=...)'
  )
  return '\n'.join(lines)
