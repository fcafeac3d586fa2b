"""SavedModel export of a model converted from the test fixtures, run by TensorFlow alone.

The fixtures' random mT5 (vocab 2100) and ViT tiny/8, converted into a PaliTinySynthetic
job dir as `pali-pax convert` writes it (conftest's `tiny_pax_job`); the trained-job case
is in test_saved_model_slow.py.
"""

import json
import os

import pytest

from pali_pax.core import errors
from pali_pax.inference import Predictor
from pali_pax.serving import saved_model, servable
from tests.pali_pax.serving import saved_model_check

STEPS = 6  # an export option, below the experiment's MAX_DECODE_LEN (16)


@pytest.fixture(scope='module')
def job_dir(tiny_pax_job):
  return tiny_pax_job


@pytest.fixture(scope='module')
def exported(job_dir, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('export') / 'saved_model')
  return saved_model.export(job_dir, out, max_decode_steps=STEPS)


def test_tf_only_process_returns_the_predictors_greedy_strings(job_dir, exported, tmp_path):
  predictor = Predictor.from_checkpoint(job_dir)
  saved_model_check.check_against_predictor(exported.saved_model, predictor, tmp_path, STEPS)


def test_metadata_records_settings_platforms_and_version(exported):
  with open(os.path.join(exported.saved_model, saved_model.METADATA)) as f:
    meta = json.load(f)
  assert meta['settings']['MAX_DECODE_STEPS'] == STEPS
  assert meta['settings']['MAX_INPUT_LEN'] == servable.servable_for(exported.job_dir).MAX_INPUT_LEN
  assert meta['platforms'] == ['cpu', 'cuda', 'tpu']
  assert meta['xla_call_module_version'] == saved_model.serialization_version()
  assert meta['weight_bytes'] == meta['float32_weight_bytes']  # not quantized


def test_refusals_name_the_setting(job_dir, tmp_path):
  with pytest.raises(errors.ConfigError, match='beam_size 2'):
    saved_model.export(job_dir, str(tmp_path / 'beam'), beam_size=2)
  with pytest.raises(errors.ConfigError, match='XlaCallModule version 99'):
    saved_model.check_serialization_version(99)
  (tmp_path / 'full').mkdir()
  (tmp_path / 'full' / 'x').write_text('')
  with pytest.raises(FileExistsError, match='not empty'):
    saved_model.export(job_dir, str(tmp_path / 'full'))
