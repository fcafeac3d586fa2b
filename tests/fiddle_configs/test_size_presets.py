"""Choosing a size with MODEL (SIZE_PRESETS), the CPU-sized fine-tune variants, decode inputs."""

import pytest

from pali_pax.core import params as params_lib
from pali_pax.fiddle_configs import experiments
from pali_pax.fiddle_configs.experiment_base import SIZE_PRESETS
from pali_pax.tasks import vocab
from tests.inputs import drain


def test_model_override_brings_its_preset_and_explicit_overrides_win():
  exp = experiments.PaliFinetuneCocoCaptions(MODEL='tiny', DATA_DIR='/d', INPUT_LEN=40)
  for name, value in SIZE_PRESETS['tiny'].items():
    if name != 'INPUT_LEN':
      assert getattr(exp, name) == value, name
  assert exp.INPUT_LEN == 40
  back = experiments.PaliFinetuneCocoCaptionsTiny(MODEL='3b')
  assert (back.VOCAB_SIZE, back.ICI_MESH_SHAPE, back.IMAGE_SIZE) == (250_112, (1, 128, 4), 224)
  # Same MODEL as the class: nothing else changes (the fine-tune recipe's own slice stays).
  assert experiments.PaliFinetuneCocoCaptions(MODEL='3b').ICI_MESH_SHAPE == (1, 8, 4)
  with pytest.raises(ValueError, match="MODEL must be one of .* got 'huge'"):
    experiments.PaliFinetuneVqaV2(MODEL='huge')


def test_a_class_setting_model_gets_its_preset_and_its_own_values_win():
  """The class-level rule is the instance rule: the preset of MODEL, then the body's own values."""

  class Mine(experiments.PaliTinySynthetic):
    MODEL = '3b'
    BATCH_SIZE = 512

  for name, value in SIZE_PRESETS['3b'].items():
    assert getattr(Mine, name) == (512 if name == 'BATCH_SIZE' else value), name
  assert Mine.TRAIN_MIXTURE == experiments.PaliTinySynthetic.TRAIN_MIXTURE  # data: inherited
  # A recipe listed before the size wins over the preset (Pali3BPretrain's INPUT_LEN).
  assert experiments.Pali3BPretrain.INPUT_LEN == 128 != SIZE_PRESETS['3b']['INPUT_LEN']
  # Every registered experiment holds its MODEL's preset except where a recipe, data mixin
  # or its own body says otherwise; the tiny ones hold all of it.
  for name in ('PaliTinySynthetic', 'PaliMiniSynthetic', 'PaliFinetuneVqaV2Tiny'):
    cls = getattr(experiments, name)
    for attr, value in SIZE_PRESETS[cls.MODEL].items():
      if attr not in cls.__dict__:  # (PaliMiniSynthetic's own WARMUP_STEPS)
        assert getattr(cls, attr) == value, (name, attr)
  with pytest.raises(ValueError, match="MODEL must be one of .* got 'huge'"):

    class Huge(experiments.PaliTinySynthetic):
      MODEL = 'huge'


def test_every_finetune_family_has_a_cpu_variant_matching_the_shipped_vocabulary():
  families = experiments.finetune_families()
  pods = [n for n in families if not n.endswith('Tiny')]
  assert len(pods) >= 4
  shipped = vocab.get_vocabulary(None).vocab_size
  for name in pods:
    tiny = families[f'{name}Tiny']()
    assert issubclass(type(tiny), families[name])
    assert tiny.VOCAB_SIZE == shipped == vocab.SYNTHETIC_VOCAB_SIZE
    assert tiny.ICI_MESH_SHAPE == (1, 1, 1) and tiny.MODEL == 'tiny'
    cfg = params_lib.unsharded(tiny.model_config())
    assert cfg.mt5_tpl.vocab_size == shipped and cfg.vit_tpl.image_size == tiny.IMAGE_SIZE


def test_decode_inputs_cover_the_whole_split(tmp_path, make_coco_dir):
  """paxml gets targets for every row of the split: 48 rows -> 2 padded batches of 32."""
  from praxis import base_hyperparams

  data = make_coco_dir(str(tmp_path / 'coco'), n_train=8, n_val=48)
  exp = experiments.PaliFinetuneCocoCaptionsTiny(DATA_DIR=data)
  (decode_p,) = exp.decoder_datasets()
  assert decode_p.eval_loop_num_batches is None and decode_p.reset_for_eval
  inp = base_hyperparams.instantiate(decode_p)
  weights = [batch.eval_sample_weights for batch in drain(inp)]
  assert [w.shape[0] for w in weights] == [32, 32]
  assert sum(float(w.sum()) for w in weights) == 48
  # What paxml's compute_metrics matches decodes against (private: no public accessor).
  inp._gen_targets_artifacts()
  assert len(inp._get_targets()) == 48


def test_tasks_listing_names_every_family_and_its_layout_without_data_dir():
  from pali_pax.fiddle_configs import registry
  from pali_pax.tasks import finetune_tasks

  text = registry.describe_finetune_families()
  for name, cls in experiments.finetune_families().items():
    assert name in text and cls.TRAIN_MIXTURE in text
    assert finetune_tasks.FAMILIES[cls.DATASET][1] in text


def test_vit_override_swaps_the_vision_tower_only():
  """VIT replaces the size's ViT (width, depth, patch); the mT5 and the fusion's input follow."""
  from pali_pax.fiddle_configs.vit import VIT_VARIANTS

  tiny = params_lib.unsharded(experiments.PaliTinySynthetic().model_config())
  mini_vit = params_lib.unsharded(experiments.PaliTinySynthetic(VIT='mini/4').model_config())
  assert (tiny.vit_tpl.width, tiny.vit_tpl.patch_size) == (VIT_VARIANTS['tiny'].width, 8)
  assert (mini_vit.vit_tpl.width, mini_vit.vit_tpl.patch_size) == (VIT_VARIANTS['mini'].width, 4)
  assert mini_vit.mt5_tpl.model_dims == tiny.mt5_tpl.model_dims
  with pytest.raises(ValueError, match="unknown ViT variant 'huge/8'"):
    experiments.PaliTinySynthetic(VIT='huge/8').model_config()
