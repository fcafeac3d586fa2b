"""Servable configs: derived from the experiment, overridden by a registered subclass."""

import json
import os

import pytest

from pali_pax.core import errors
from pali_pax.serving import servable


@pytest.fixture
def clean_registry(monkeypatch):
  monkeypatch.setattr(servable, '_REGISTRY', {})
  monkeypatch.setattr(servable, '_BY_EXPERIMENT', {})


def test_default_is_derived_from_the_experiment(clean_registry):
  s = servable.servable_for('PaliTinySynthetic')
  exp = s.experiment
  assert s.MAX_INPUT_LEN == exp.INPUT_LEN and s.MAX_DECODE_STEPS == exp.MAX_DECODE_LEN
  assert s.BATCH_SIZES[0] == 1 and s.BATCH_SIZES[-1] == exp.EVAL_BATCH_SIZE
  assert list(s.BATCH_SIZES) == sorted(set(s.BATCH_SIZES))
  assert (s.BEAM_SIZE, s.QUANTIZE, s.image_size) == (1, None, exp.IMAGE_SIZE)
  assert s.name == 'PaliTinySyntheticServable' and s.name in servable.names()
  assert [s.bucket(n) for n in (1, 2, 4, 5)] == [1, 4, 4, 16]
  with pytest.raises(errors.InputValidationError, match='largest batch bucket'):
    s.bucket(s.max_batch_size + 1)


def test_user_subclass_overrides_and_is_found_by_name(clean_registry):
  @servable.register
  class MyTiny(servable.PaliServable):
    EXPERIMENT = 'PaliTinySynthetic'
    BATCH_SIZES = (1, 8)
    BATCH_WAIT_MS = 20.0

  for key in ('PaliTinySynthetic', 'MyTiny'):
    s = servable.servable_for(key)
    assert isinstance(s, MyTiny) and s.BATCH_SIZES == (1, 8) and s.BATCH_WAIT_MS == 20.0
    assert s.MAX_DECODE_STEPS == s.experiment.MAX_DECODE_LEN  # still derived
  assert servable.servable_for('MyTiny', QUANTIZE='int8').settings()['QUANTIZE'] == 'int8'


def test_job_dir_uses_its_recorded_overrides(tmp_path, clean_registry):
  meta = {'experiment': 'PaliTinySynthetic', 'overrides': {'MAX_DECODE_LEN': 5, 'INPUT_LEN': 9}}
  (tmp_path / 'checkpoints').mkdir()
  with open(os.path.join(tmp_path, 'pali_pax.json'), 'w') as f:
    json.dump(meta, f)
  for path in (str(tmp_path), str(tmp_path / 'checkpoints')):
    s = servable.servable_for(path)
    assert (s.MAX_DECODE_STEPS, s.MAX_INPUT_LEN, s.job_dir) == (5, 9, str(tmp_path))


@pytest.mark.parametrize(
  'settings, match',
  [
    ({'BATCH_SIZES': (4, 1)}, 'BATCH_SIZES'),
    ({'BATCH_SIZES': ()}, 'BATCH_SIZES'),
    ({'MAX_DECODE_STEPS': 0}, 'MAX_DECODE_STEPS'),
    ({'BATCH_WAIT_MS': -1.0}, 'BATCH_WAIT_MS'),
    ({'QUANTIZE': 'int4'}, 'QUANTIZE'),
    ({'batch_sizes': (1,)}, 'unknown servable setting'),
  ],
)
def test_bad_settings_are_named(settings, match, clean_registry):
  with pytest.raises(errors.ConfigError, match=match):
    servable.servable_for('PaliTinySynthetic', **settings)


def test_unknown_names_fail_clearly(tmp_path, clean_registry):
  with pytest.raises(errors.ConfigError, match='unknown experiment'):
    servable.servable_for('NoSuchExperiment')
  with pytest.raises(errors.MissingFileError, match='no job dir'):
    servable.servable_for(str(tmp_path))

  class NoExp(servable.PaliServable):
    pass

  with pytest.raises(errors.ConfigError, match='EXPERIMENT'):
    servable.register(NoExp)
