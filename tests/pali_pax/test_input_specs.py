"""The explicit input specs paxml inits the model from equal the train input's real batch."""

import jax
from praxis import pax_fiddle

from pali_pax.fiddle_configs import experiments
from pali_pax.tasks import synthetic_tasks


def test_specs_equal_the_first_train_batch():
  # One task rather than the mixture: the same batch fields, a fraction of the set-up.
  caption = synthetic_tasks.task_name('caption', experiments.TINY_SUFFIX)
  exp = experiments.PaliTinySynthetic(
    BATCH_SIZE=4, INPUT_LEN=10, TARGET_LEN=6, TRAIN_MIXTURE=caption
  )
  specs = pax_fiddle.instantiate(exp.get_input_specs_provider_params()).get_input_specs()
  batch = pax_fiddle.instantiate(exp.datasets()[0]).get_next()

  def spec(x):
    return (tuple(x.shape), str(x.dtype))

  assert sorted(specs) == sorted(batch)
  assert jax.tree_util.tree_map(spec, dict(specs)) == jax.tree_util.tree_map(spec, dict(batch))
  assert specs.image.shape == (4, 32, 32, 3)
