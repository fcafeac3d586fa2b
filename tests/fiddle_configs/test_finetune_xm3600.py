"""PaliFinetuneXm3600: trains on COCO captions, scores XM3600's test split per language."""

import pytest
from praxis import base_hyperparams

from pali_pax.core import errors
from pali_pax.fiddle_configs import experiments, registry
from pali_pax.tasks import step_input
from tests.inputs import drain


def test_builds_coco_train_input_and_decodes_each_xm3600_language_from_its_test_split(xm3600_dirs):
  coco, xm = xm3600_dirs
  exp = experiments.PaliFinetuneXm3600Tiny(DATA_DIR=coco, EVAL_DATA_DIR=xm)
  train, *evals = exp.datasets()
  assert train.mixture_name == 'pali_coco_captions' and train.split_name == 'train'
  assert issubclass(train.cls, step_input.StepIndexedInput)
  want = ['pali_xm3600_de', 'pali_xm3600_en', 'pali_xm3600_zh']
  assert [e.mixture_name for e in evals] == want and {e.split_name for e in evals} == {'test'}
  decodes = exp.decoder_datasets()
  assert [d.mixture_name for d in decodes] == want
  # The zh decode program reads the one zh caption of XM3600's test split.
  zh = base_hyperparams.instantiate(decodes[2])
  batches = drain(zh)
  assert sum(float(b.eval_sample_weights.sum()) for b in batches) == 1
  zh._gen_targets_artifacts()  # what paxml scores decodes against (no public accessor)
  (target,) = zh._get_targets().values()
  assert target['targets_pretokenized'].decode() == '一个正方形'
  assert target['inputs_pretokenized'] == b'Generate caption in ZH:'


def test_languages_can_be_limited_and_missing_eval_dir_is_named(xm3600_dirs):
  coco, xm = xm3600_dirs
  exp = experiments.PaliFinetuneXm3600Tiny(DATA_DIR=coco, EVAL_DATA_DIR=xm, XM3600_LANGS=('en',))
  assert [d.mixture_name for d in exp.decoder_datasets()] == ['pali_xm3600_en']
  with pytest.raises(errors.ConfigError, match=r'needs EVAL_DATA_DIR .*captions\.jsonl'):
    experiments.PaliFinetuneXm3600Tiny(DATA_DIR=coco).datasets()
  with pytest.raises(errors.ConfigError, match='needs DATA_DIR'):
    experiments.PaliFinetuneXm3600Tiny(EVAL_DATA_DIR=xm).decoder_datasets()
  listing = registry.describe_finetune_families()
  assert 'EVAL_DATA_DIR (test): captions.jsonl' in listing


def test_other_experiments_keep_evaluating_the_validation_split(xm3600_dirs):
  coco, _ = xm3600_dirs
  exp = experiments.PaliFinetuneCocoCaptionsTiny(DATA_DIR=coco)
  assert {d.split_name for d in (*exp.datasets()[1:], *exp.decoder_datasets())} == {'validation'}
