"""Our layers in other Pax models: a ViT image classifier from praxis parts.

`vit_classifier_config` puts PaLI's VisionTransformer (every patch token, no
pooling) in front of praxis' global average pooling, as the network of praxis'
`ClassificationModel` with a praxis `FullSoftmax` head. `vit_classifier_task`
wraps it in a paxml `SingleTask` with a praxis Adam learner: the task a paxml
experiment's `task()` returns, ready for `paxml.main` or for paxml's
`trainer_lib` train step (tests/fiddle_configs/test_examples_slow.py trains it).

    from pali_pax.fiddle_configs import examples, sharding
    model = examples.vit_classifier_config('B/16', image_size=224, num_classes=1000)
    sharding.shard_vit(model.network_tpl.layers[0])  # the mesh goes on the task's model

Start the ViT from a PaLI / big_vision checkpoint with
`pali_pax.convert.load_vit(path, model.network_tpl.layers[0])`: its params
are the `network/layers_0` subtree.
"""

from paxml import tasks_lib
from praxis import pax_fiddle
from praxis.layers import embedding_softmax, models, poolings, sequential

from pali_pax.fiddle_configs import learner
from pali_pax.fiddle_configs import vit as vit_configs


def vit_classifier_config(
  variant: str = 'tiny/8', image_size: int = 32, num_classes: int = 10
) -> pax_fiddle.Config[models.ClassificationModel]:
  """praxis ClassificationModel: ViT tokens [B, T, D] -> mean over T -> softmax [B, classes].

  Batches hold `image` [B, H, W, 3] (in [-1, 1]) and `label_probs` [B, classes].
  """
  vit = vit_configs.vit_config(variant, image_size=image_size)
  pool = pax_fiddle.Config(poolings.GlobalPooling, pooling_type='AVG', pooling_dims=[1])
  return pax_fiddle.Config(
    models.ClassificationModel,
    name='vit_classifier',
    network_tpl=pax_fiddle.Config(sequential.Sequential, layers=[vit, pool]),
    softmax_tpl=pax_fiddle.Config(
      embedding_softmax.FullSoftmax, input_dims=vit.width, num_classes=num_classes
    ),
  )


def vit_classifier_task(
  model: pax_fiddle.Config[models.ClassificationModel], learning_rate: float = 1e-3
) -> pax_fiddle.Config[tasks_lib.SingleTask]:
  """paxml SingleTask training `model` with praxis Adam (constant rate) on `avg_xent`."""
  task = pax_fiddle.Config(tasks_lib.SingleTask, name='vit_classifier_task', model=model)
  task.train.learner = learner.constant_adam_learner('avg_xent', learning_rate)
  return task
