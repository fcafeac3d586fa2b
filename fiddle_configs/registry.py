"""Lookup and listing of the registered PaLI experiments."""

from paxml import experiment_registry

from pali_pax.fiddle_configs import experiments

_PREFIX = experiments.__name__ + '.'


def names() -> list[str]:
  """Short class names of our registered experiments, sorted."""
  return sorted(k[len(_PREFIX) :] for k in experiment_registry.get_all() if k.startswith(_PREFIX))


def get_experiment(name: str) -> type[experiments.PaliExperiment]:
  """Experiment class by short or module-qualified name (clear error if unknown)."""
  cls = experiment_registry.get(name if '.' in name else _PREFIX + name)
  if cls is None:
    raise ValueError(f'unknown experiment {name!r}; registered: {names()}')
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
