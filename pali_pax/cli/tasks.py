"""`pali-pax tasks` and `pali-pax tasks show NAME`: the seqio tasks, as text.

list_tasks() -> str                                registered PaLI tasks and mixtures (with rates)
show_examples(name, n=3, split='validation') -> str decoded examples of a task or mixture
"""

import argparse

import numpy as np
import seqio

from pali_pax.cli import common
from pali_pax.core import errors
from pali_pax.fiddle_configs import registry
from pali_pax.tasks import (
  finetune_tasks,  # registers the synthetic tasks
  synthetic_tasks,  # registers the default synthetic tasks
)

_PREFIX = 'pali_'


def _pali_names(registry: type[seqio.TaskRegistry] | type[seqio.MixtureRegistry]) -> list[str]:
  return sorted(n for n in registry.names() if n.startswith(_PREFIX))


def list_tasks() -> str:
  """Every registered PaLI seqio task (splits) and mixture (tasks with rates)."""
  lines = ['seqio tasks:']
  for name in _pali_names(seqio.TaskRegistry):
    task = seqio.get_mixture_or_task(name)
    lines.append(f'  {name:<40} splits: {", ".join(task.splits)}')
  lines.append('seqio mixtures (task: rate):')
  for name in _pali_names(seqio.MixtureRegistry):
    mix = seqio.get_mixture_or_task(name)
    rates = ', '.join(f'{t.name}: {mix.get_rate(t):g}' for t in mix.tasks)
    lines.append(f'  {name}\n    {rates}')
  lines.append(
    'fine-tune families (registered when an experiment gets its data: '
    'pali-pax train --exp=PaliFinetune... --fdl.DATA_DIR=DIR; `pali-pax experiments` lists them):'
  )
  for keyword, (names, layout) in finetune_tasks.FAMILIES.items():
    lines.append(f'  {names:<40} {keyword}: {layout}')
  configs = synthetic_tasks.registered_configs()
  for suffix, cfg in sorted(configs.items()):
    label = synthetic_tasks.mixture_name(suffix)
    lines.append(
      f'synthetic copy {label}: image {cfg.image_size}px, vocab {cfg.vocab_path or "shipped"}, '
      f'{cfg.num_train_examples} train / {cfg.num_validation_examples} validation examples per task'
    )
  return '\n'.join(lines)


def _decode(vocab: seqio.Vocabulary, ids: np.ndarray) -> str:
  return vocab.decode([int(i) for i in ids])


def show_examples(name: str, n: int = 3, split: str = 'validation') -> str:
  """The first `n` examples of a task or mixture: decoded inputs / targets, image size.

  Raises:
    ValueError: unknown name (listing the registered PaLI names) or split.
  """
  try:
    provider = seqio.get_mixture_or_task(name)
  except ValueError as e:
    known = _pali_names(seqio.TaskRegistry) + _pali_names(seqio.MixtureRegistry)
    raise errors.InputValidationError(
      f'Unknown task or mixture {name!r}; registered: {", ".join(known)}'
    ) from e
  if split not in provider.splits:
    raise errors.InputValidationError(
      f'{name} has no split {split!r}; splits: {", ".join(provider.splits)}'
    )
  ds = provider.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1)
  vocab = provider.output_features['targets'].vocabulary
  lines = [f'{name} [{split}]']
  for i, ex in enumerate(ds.take(n).as_numpy_iterator()):
    image = ex['image']
    lines.append(
      f'--- example {i}: image {image.shape[0]}x{image.shape[1]} '
      f'(has_image={float(ex["has_image"]):g}), {len(ex["inputs"])} input / '
      f'{len(ex["targets"])} target tokens'
    )
    lines.append(f'  inputs:  {_decode(vocab, ex["inputs"])}')
    lines.append(f'  targets: {_decode(vocab, ex["targets"])}')
  return '\n'.join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The arguments of `pali-pax tasks`."""
  p.add_argument('action', nargs='?', default='list', choices=['list', 'show'])
  p.add_argument('name', nargs='?', help='task or mixture to show')
  p.add_argument('--n', type=common.positive_int, default=3, help='examples to show')
  p.add_argument('--split', default='validation', help='split to show')


def run(args: argparse.Namespace) -> int:
  """Prints the listing, or the examples of one task."""
  if args.action == 'show':
    if not args.name:
      raise errors.InputValidationError('`tasks show` needs a task name: pali-pax tasks show NAME')
    print(show_examples(args.name, n=args.n, split=args.split))
  else:
    print(list_tasks())
    print(registry.describe_finetune_families())
  return 0
