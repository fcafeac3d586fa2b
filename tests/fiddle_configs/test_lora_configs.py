"""LORA_* and TRAINABLE as experiment attributes: which layers get adapters, config errors."""

import re

import jax
import pytest

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors
from pali_pax.core import params as params_lib
from pali_pax.fiddle_configs import experiments, learner


def _adapted_layers(exp) -> set[str]:
  specs = batch_lib.batch_specs(exp.IMAGE_SIZE, 1, exp.INPUT_LEN, exp.TARGET_LEN)
  tree = params_lib.abstract_params(exp.model_config(), specs, method='compute_predictions')
  names = ['/'.join(str(k.key) for k in p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]
  return {n.rsplit('/', 1)[0] for n in names if n.endswith('/lora_a')}


def test_default_targets_are_attention_and_feed_forward_of_both_towers():
  layers = _adapted_layers(experiments.PaliTinySynthetic(TRAINABLE='lora', LORA_RANK=2))
  kinds = {re.sub(r'x_layers_\d+', 'L', n) for n in layers}
  att = ('query', 'key', 'value', 'post')
  want = {f'vit/transformer/repeat/sub/L/self_attention/{p}' for p in att}
  want |= {f'vit/transformer/repeat/sub/L/ff_layer/ffn_layer{i}/linear' for i in (1, 2)}
  for stack, kinds_ in (('encoder', ('self',)), ('decoder', ('self', 'cross'))):
    want |= {f'mt5/{stack}/L/{k}_attention/{p}' for k in kinds_ for p in att}
    want |= {f'mt5/{stack}/L/ff/ffn_layer{i}/linear' for i in ('1_gate', '1', '2')}
  assert kinds == want  # not the fusion projection, the output head or the embeddings


def test_targets_narrow_the_adapters():
  exp = experiments.PaliTinySynthetic(
    TRAINABLE='lora', LORA_RANK=2, LORA_TARGETS=(r'^mt5/decoder/.*cross_attention/(query|value)$',)
  )
  assert _adapted_layers(exp) == {
    f'mt5/decoder/x_layers_{i}/cross_attention/{p}' for i in (0, 1) for p in ('query', 'value')
  }


def test_freeze_vit_maps_onto_trainable():
  assert experiments.PaliTinySynthetic(FREEZE_VIT=True).trainable() == 'no_vit'
  assert experiments.PaliTinySynthetic(FREEZE_VIT=False).trainable() == 'all'
  # TRAINABLE, once set, is the one that counts.
  assert (
    experiments.PaliTinySynthetic(FREEZE_VIT=True, TRAINABLE='decoder').trainable() == 'decoder'
  )
  task = experiments.PaliTinySynthetic(TRAINABLE='lora').task()
  assert task.train.learner.bprop_variable_inclusion == [learner.TRAINABLE_PRESETS['lora'][0][0]]
  assert not task.model.freeze_vit  # the ViT's adapters need its backward pass


def test_bad_values_are_config_errors_naming_the_attribute():
  with pytest.raises(errors.ConfigError, match='TRAINABLE'):
    experiments.PaliTinySynthetic(TRAINABLE='everything').task()
  with pytest.raises(errors.ConfigError, match='LORA_RANK'):
    experiments.PaliTinySynthetic(TRAINABLE='lora', LORA_RANK=0).model_config()
