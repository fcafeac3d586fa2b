"""SavedModel export of a job trained by paxml.main (tiny, a few steps), float32 and int8.

Slow: trains PaliTinySynthetic through `pali-pax train` (= paxml.main, ~1-3 min here).
"""

import pytest

from pali_pax.inference import Predictor
from pali_pax.serving import int8, saved_model
from tests.pali_pax.serving import saved_model_check
from tests.runs import run_tiny

pytestmark = pytest.mark.slow

STEPS = 8


@pytest.fixture(scope='module')
def trained_job(tmp_path_factory):
  job = tmp_path_factory.mktemp('trained_job')
  run_tiny(str(job), 20, CHECKPOINT_EVERY=20, EVAL_EVERY=1000)
  return str(job)


@pytest.mark.parametrize('quantize', [None, 'int8'])
def test_trained_job_tf_only_matches_predictor(trained_job, tmp_path, quantize):
  info = saved_model.export(
    trained_job, str(tmp_path / 'saved_model'), max_decode_steps=STEPS, quantize=quantize
  )
  if quantize:  # int8 linears, float16 lm head: exactly the planned bytes
    float32_params = Predictor.from_checkpoint(trained_job).params
    assert info.weight_bytes == int8.planned_bytes(float32_params)
    assert info.weight_bytes < 0.4 * info.float32_weight_bytes
  predictor = Predictor.from_checkpoint(trained_job, quantize=quantize)
  saved_model_check.check_against_predictor(info.saved_model, predictor, tmp_path, STEPS)
