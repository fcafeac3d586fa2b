"""The ViT classifier example: a non-PaLI praxis model from our layers learns through paxml's step."""

import functools
import math

import fiddle as fdl
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from paxml import trainer_lib
from praxis import base_layer, py_utils

from pali_pax.fiddle_configs import examples
from pali_pax.layers import vit

pytestmark = pytest.mark.slow

CLASSES, SIZE, BATCH = 4, 16, 32


def colour_batch(rng: np.random.Generator) -> py_utils.NestedMap:
  """Noise images; classes 0-2: that colour channel is brighter, class 3: none is."""
  labels = rng.integers(0, CLASSES, BATCH)
  images = rng.uniform(-0.5, 0.5, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
  for image, label in zip(images, labels, strict=True):
    if label < 3:
      image[..., label] += 0.5
  return py_utils.NestedMap(
    image=jnp.asarray(images),
    label_probs=jnp.asarray(np.eye(CLASSES, dtype=np.float32)[labels]),
  )


@pytest.fixture(scope='module')
def task():
  model = examples.vit_classifier_config('tiny/8', image_size=SIZE, num_classes=CLASSES)
  return base_layer.instantiate(examples.vit_classifier_task(model, learning_rate=3e-3))


def test_the_network_is_our_vit_under_praxis_parts(task):
  assert fdl.get_callable(task.model.network_tpl.layers[0]) is vit.VisionTransformer
  rng = np.random.default_rng(0)
  batch = colour_batch(rng)
  variables = task.model.init(jax.random.PRNGKey(0), batch)
  assert set(variables['params']) == {'network', 'softmax'}
  assert 'pos_embedding' in variables['params']['network']['layers_0']


def test_trains_on_new_batches_with_a_praxis_optimizer(task):
  rng = np.random.default_rng(0)
  batch = colour_batch(rng)
  shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
  with base_layer.JaxContext.new_context(hparams=base_layer.JaxContext.HParams(do_eval=False)):
    wps = task.model.abstract_init_with_metadata(shapes)
  states, _ = trainer_lib.initialize_model_state(
    task, jax.random.PRNGKey(0), shapes, do_init_checkpoint_rules=False, var_weight_hparams=wps
  )
  step = jax.jit(
    functools.partial(trainer_lib.train_step_single_learner, task, var_weight_hparams=wps)
  )
  losses = []
  for i in range(12):
    states, out = step(states, jax.random.PRNGKey(i), batch)
    losses.append(float(out.loss))
    batch = colour_batch(rng)  # every step sees new examples: falling loss is learning
  chance = math.log(CLASSES)
  assert losses[0] > 0.7 * chance, losses
  assert np.mean(losses[-3:]) < 0.2 * chance, losses
