"""The step-indexed train input as the tests build it: examples by index, inputs by step."""

import numpy as np
from praxis import pax_fiddle

from pali_pax.tasks import feature_converter, step_input

LENGTHS = {'inputs': 24, 'targets': 16}


def examples(name, ids, seed=7):
  """The examples of indices `ids` of task/mixture `name` (split train), as numpy dicts."""
  return list(step_input.examples_dataset(name, 'train', seed, ids, LENGTHS).as_numpy_iterator())


def same(a, b):
  """Two examples/batches hold the same keys and equal arrays."""
  return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def make_input(name, batch_size, hosts=1, host=0, step=0, seed=7, make_batches=True):
  """A StepIndexedInput of `name` for process `host` of `hosts`, restored at `step`."""
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
    make_batches=make_batches,
  )
  p.deterministic_input_start_index._latest_model_step = step  # what paxml sets on restore
  return pax_fiddle.instantiate(p)
