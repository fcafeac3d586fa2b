"""The step-indexed train input over the synthetic mixture (several tasks traced each).

Example k is a pure function of (seed, k) whatever the stream around it, and the global
batch is the same for any process count and start step. The one-task reader checks of
the same contracts run in the default suite (tests/tasks/test_step_input.py).
"""

import json

import numpy as np
import pytest

from pali_pax.tasks import synthetic, synthetic_tasks
from tests.tasks.step_input_cases import examples as _examples
from tests.tasks.step_input_cases import make_input as _input
from tests.tasks.step_input_cases import same as _same

pytestmark = pytest.mark.slow

KEPT = ('caption', 'vqa', 'span_corruption')  # span corruption: a random preprocessor


@pytest.fixture(scope='module')
def mixture():
  rates = {t: 0.0 for t in synthetic.TASKS if t not in KEPT}
  return synthetic_tasks.register_synthetic_tasks(image_size=16, suffix='_steptest', rates=rates)


# ~1-2 min of tf.data tracing on a loaded 2-core CPU
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


# ~2-4 min: five inputs, each tracing its tasks
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


# ~1 min: the mixture streamed example by example, against the batched default
def test_batched_input_gives_the_batches_of_the_streamed_one(mixture):
  batched, streamed = _input(mixture, 8, step=3), _input(mixture, 8, step=3, make_batches=False)
  assert batched._dataset(0).element_spec == streamed._dataset(0).element_spec
  for _ in range(2):
    assert _same(dict(batched.get_next()), dict(streamed.get_next()))
