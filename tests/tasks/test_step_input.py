"""The step-indexed train input: example k is a pure function of (seed, k).

Independent references: the index arithmetic by hand; the same example asked
for alone, inside another run, from another start step, by 1 or 2 processes;
a JSON reader's epoch permutation checked against its records. The synthetic
mixture tests trace several tasks each and are marked slow; the reader tests
(one task) run in the default pytest suite.
"""

import json

import numpy as np
import pytest
from PIL import Image
from praxis import pax_fiddle

from pali_pax.tasks import (
  feature_converter,
  finetune_tasks,
  readers,
  step_input,
  synthetic,
  synthetic_tasks,
)

LENGTHS = {'inputs': 24, 'targets': 16}
KEPT = ('caption', 'vqa', 'span_corruption')  # span corruption: a random preprocessor


@pytest.fixture(scope='module')
def mixture():
  rates = {t: 0.0 for t in synthetic.TASKS if t not in KEPT}
  return synthetic_tasks.register_synthetic_tasks(image_size=16, suffix='_steptest', rates=rates)


def _examples(name, ids, seed=7):
  return list(step_input.examples_dataset(name, 'train', seed, ids, LENGTHS).as_numpy_iterator())


def _same(a, b):
  return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def _input(name, batch_size, hosts=1, host=0, step=0, seed=7):
  p = pax_fiddle.Config(
    step_input.StepIndexedInput,
    name='train',
    mixture_name=name,
    task_feature_lengths=LENGTHS,
    feature_converter=feature_converter.PaliFeatureConverter(),
    batch_size=batch_size,
    num_infeed_hosts=hosts,
    infeed_host_index=host,
    input_random_seed=seed,
    is_training=True,
  )
  p.deterministic_input_start_index._latest_model_step = step  # what paxml sets on restore
  return pax_fiddle.instantiate(p)


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


@pytest.mark.slow  # ~1-2 min of tf.data tracing on a loaded 2-core CPU
def test_example_k_does_not_depend_on_the_stream_around_it(mixture):
  run = _examples(mixture, range(100, 124))
  alone = _examples(mixture, [123, 103, 100])
  assert _same(alone[0], run[23]) and _same(alone[1], run[3]) and _same(alone[2], run[0])
  text_only = [ex for ex in run if ex['has_image'] == 0.0]  # span corruption, rate 0.5 / 4.5
  assert 0 < len(text_only) < len(run)
  # Span corruption draws per example: different texts get different noise patterns,
  # and the seed changes the data.
  assert len({ex['targets'].tobytes() for ex in text_only}) == len(text_only)
  other_seed = _examples(mixture, range(100, 124), seed=8)
  assert not all(_same(a, b) for a, b in zip(run, other_seed, strict=True))


@pytest.mark.slow  # ~2-4 min: five inputs, each tracing its tasks
def test_global_batch_is_the_same_for_any_process_count_and_start_step(mixture):
  one = _input(mixture, 8)
  batches = [one.get_next() for _ in range(3)]
  assert one.next_step == 3
  hosts = [_input(mixture, 4, hosts=2, host=h) for h in (0, 1)]
  for want in batches:
    got = [h.get_next() for h in hosts]
    for key in want:
      np.testing.assert_array_equal(np.concatenate([got[0][key], got[1][key]]), want[key])
  resumed = _input(mixture, 8, step=2).get_next()  # a restart from checkpoint step 2
  assert _same(dict(resumed), dict(batches[2]))
  # The state praxis checkpoints (input_checkpointing) is the next step.
  fresh = _input(mixture, 8)
  fresh.set_state(json.dumps({'step': 1}).encode())
  assert _same(dict(fresh.get_next()), dict(batches[1]))


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
