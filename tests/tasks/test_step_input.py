"""The step-indexed train input: example k is a pure function of (seed, k).

Independent references: the index arithmetic by hand; the same example asked
for alone, inside another run, from another start step, by 1 or 2 processes;
a JSON reader's epoch permutation checked against its records. The synthetic
mixture tests trace several tasks each: test_step_input_slow.py (`make test-slow`);
the reader tests here (one task) check the same contracts in the default suite.
"""

import json

import numpy as np
import pytest
from PIL import Image

from pali_pax.tasks import (
  feature_converter,
  finetune_tasks,
  readers,
  step_input,
)
from tests.tasks import step_input_cases

LENGTHS = step_input_cases.LENGTHS
_examples = step_input_cases.examples
_same = step_input_cases.same
_input = step_input_cases.make_input


def test_host_example_indices_by_hand():
  # Step 3, 2 processes x 4 rows: global rows 24..31, process 1 holds 28..31.
  assert step_input.host_example_indices(3, 4, 2, 1).tolist() == [28, 29, 30, 31]
  assert step_input.host_example_indices(3, 8, 1, 0).tolist() == list(range(24, 32))
  assert step_input.host_example_indices(0, 2, 2, 0, offset=5).tolist() == [5, 6]


def test_task_choices_follow_the_rates_and_depend_on_seed_and_index_only():
  rates = np.array([2.0, 1.0, 0.5, 0.5])
  n = 40_000
  got = step_input.task_choices(3, np.arange(n, dtype=np.int64), rates).numpy()
  # Each count is binomial(n, p): 5 standard deviations of slack.
  p = rates / rates.sum()
  np.testing.assert_array_less(np.abs(np.bincount(got, minlength=4) - n * p), 5 * np.sqrt(n * p))
  picked = step_input.task_choices(3, np.array([17, 5, 39_999], np.int64), rates).numpy()
  assert picked.tolist() == [got[17], got[5], got[39_999]]
  other = step_input.task_choices(4, np.arange(n, dtype=np.int64), rates).numpy()
  assert 0.5 < np.mean(other != got) < 0.8  # independent draws differ 1 - sum(p^2) = 0.66


def _png(path, colour):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new('RGB', (8, 8), colour).save(path, format='PNG')


@pytest.fixture(scope='module')
def coco_task(tmp_path_factory):
  """A COCO captions task over 5 records; record 4's image is undecodable."""
  root = tmp_path_factory.mktemp('coco')
  images = root / 'val2014'
  names = [f'{i}.png' for i in range(5)]
  for i, name in enumerate(names[:4]):
    _png(images / name, (40 * i, 10, 200))
  (images / names[4]).write_bytes(b'not an image')  # dropped by decode_images
  ann = {
    'images': [{'id': i, 'file_name': n} for i, n in enumerate(names)],
    'annotations': [{'image_id': i, 'caption': f'caption {i}'} for i in range(5)],
  }
  (root / 'ann.json').write_text(json.dumps(ann))
  source = readers.coco_captions_source({'train': (str(root / 'ann.json'), str(images))})
  return finetune_tasks.register_task('pali_coco_steptest', source, 'caption', image_size=16)


def test_reader_epochs_are_permutations_and_bad_images_are_replaced(coco_task):
  vocab = finetune_tasks.vocab_lib.get_vocabulary(None)

  def captions(ids):
    return [vocab.decode(ex['targets'].tolist()) for ex in _examples(coco_task, ids)]

  epochs = captions(range(10))
  good = {f'caption {i}' for i in range(4)}
  for epoch in (epochs[:5], epochs[5:]):
    # Each good record once per epoch; the bad one's slot holds another good record.
    assert set(epoch) == good and len(epoch) == 5
  assert captions([7, 2]) == [epochs[7], epochs[2]]


def test_a_restarted_input_continues_with_the_next_step(coco_task):
  """The fast resume check (one task): what paxml's restore at step 2 gives."""
  run = _input(coco_task, 3)
  batches = [run.get_next() for _ in range(3)]
  restarted = _input(coco_task, 3, step=2)
  assert restarted.next_step == 2
  assert _same(dict(restarted.get_next()), dict(batches[2]))
  assert not _same(dict(batches[1]), dict(batches[2]))


def test_fused_input_gives_the_batches_of_the_plain_pipeline(coco_task):
  """tf.data map fusion (the train input's option) changes the host cost, not the data."""
  run = _input(coco_task, 3)
  assert run._dataset(0).options().experimental_optimization.map_fusion
  got = [dict(run.get_next()) for _ in range(2)]
  examples = step_input.examples_dataset(coco_task, 'train', 7, range(6), LENGTHS)
  plain = feature_converter.PaliFeatureConverter()(examples, LENGTHS).batch(3)
  assert not plain.options().experimental_optimization.map_fusion
  want = list(plain.as_numpy_iterator())
  assert len(want) == 2
  assert all(_same(g, w) for g, w in zip(got, want, strict=True))
