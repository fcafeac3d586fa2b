"""Slow tier of test_seqio_tasks.py: `pali-pax tasks` listing and examples (builds the mixture)."""

import re

import pytest

from pali_pax.cli import tasks as cli
from pali_pax.tasks import finetune_tasks
from tests.tasks.test_seqio_tasks import SUFFIX, register_mixture

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def mixture():
  return register_mixture()


def test_cli_listing_and_examples(mixture):
  listing = cli.list_tasks()
  assert 'pali_synthetic_caption' in listing and 'pali_synthetic_mixture' in listing
  assert f'pali_synthetic_vqa{SUFFIX}: 2' in listing
  # Every fine-tune family is listed with its keyword and layout, data or not.
  for names, keyword in [(n, k) for k, (n, _) in finetune_tasks.FAMILIES.items()]:
    assert re.search(rf'{re.escape(names)}\s+{keyword}: \S', listing), names
  assert 'jsonl_dir: train.jsonl, val.jsonl' in listing and 'docs/data_format.md' in listing
  shown = cli.show_examples(f'pali_synthetic_caption{SUFFIX}', n=3)
  assert shown.count('  inputs:  Generate caption in ') == 3 and 'image 32x32' in shown
  assert cli.show_examples(mixture, n=2, split='train').count('targets:') == 2
  with pytest.raises(ValueError, match='Unknown task or mixture'):
    cli.show_examples('pali_nothing')
  with pytest.raises(ValueError, match='has no split'):
    cli.show_examples(mixture, split='test')
