"""pali_pax.job_config (and pali_pax.cli.train): `pali-pax train` flags -> (experiment, overrides) -> JOB/pali_pax.json."""

import json
import os

import pytest

from pali_pax import job_config
from pali_pax.cli import train
from pali_pax.core.errors import FileFormatError

PREFIX = 'pali_pax.fiddle_configs.experiments.'


@pytest.mark.parametrize(
  'text, value',
  [
    ('200', 200),
    ('3e-3', 3e-3),
    ('(1,1,1)', (1, 1, 1)),
    ("'/data/coco'", '/data/coco'),
    ('/data/coco', '/data/coco'),  # not a literal: a string, unquoted
    ('tiny', 'tiny'),
    ('True', True),
    ('false', False),
    ('None', None),
  ],
)
def test_parse_value(text, value):
  assert train.parse_value(text) == value


def test_exp_and_fdl_flags_become_the_fiddle_form():
  exp, overrides, argv = train.resolve_flags(
    ['--exp=PaliFinetuneCocoCaptions', '--fdl.DATA_DIR=/d', '--fdl.MODEL=tiny', '--job_log_dir=j']
  )
  assert exp == 'PaliFinetuneCocoCaptions'
  assert overrides == {'DATA_DIR': '/d', 'MODEL': 'tiny'}
  assert argv == [
    f"--fdl_config={PREFIX}experiment_config('PaliFinetuneCocoCaptions')",
    "--fdl.DATA_DIR='/d'",
    "--fdl.MODEL='tiny'",
    '--job_log_dir=j',
  ]


def test_flags_may_take_their_value_as_the_next_argument():
  eq = train.resolve_flags(['--exp=PaliTinySynthetic', '--fdl.SEED=3', '--mode=train'])
  space = train.resolve_flags(['--exp', 'PaliTinySynthetic', '--fdl.SEED', '3', '--mode=train'])
  assert space == eq
  assert eq[:2] == ('PaliTinySynthetic', {'SEED': 3})


def test_fdl_config_forms_resolve_to_the_same_experiment():
  a = train.resolve_flags([f'--fdl_config={PREFIX}tiny_synthetic', '--fdl.SEED=3'])
  b = train.resolve_flags([f"--fdl_config={PREFIX}experiment_config('PaliTinySynthetic')"])
  c = train.resolve_flags([f'--exp={PREFIX}PaliTinySynthetic', '--fdl.SEED=3'])
  assert a[:2] == ('PaliTinySynthetic', {'SEED': 3}) == c[:2]
  assert b[:2] == ('PaliTinySynthetic', {})
  assert a[2] == c[2]


def test_bad_flags_are_errors_naming_them():
  with pytest.raises(ValueError, match='needs --exp'):
    train.resolve_flags(['--fdl.SEED=3'])
  with pytest.raises(ValueError, match='--fdl.SEED'):
    train.resolve_flags(['--exp=PaliTinySynthetic', '--fdl.SEED'])
  with pytest.raises(ValueError, match='no attribute .NOT_AN_ATTR'):
    job_config.build('PaliTinySynthetic', {'NOT_AN_ATTR': 1})
  # Another package's experiment passes through to paxml untouched.
  assert train.resolve_flags(['--exp=other.pkg.Exp'])[0] is None


def test_write_read_round_trip_keeps_tuples_and_other_keys(tmp_path):
  job = str(tmp_path / 'job')
  os.makedirs(job)
  with open(os.path.join(job, job_config.METADATA_FILE), 'w') as f:
    json.dump({'experiment': 'X', 'sources': {'mt5': '/ckpt'}}, f)
  overrides = {'ICI_MESH_SHAPE': (1, 1, 1), 'DECODE_TASKS': ('a', 'b'), 'SEED': 7}
  meta = job_config.write(job, 'PaliTinySynthetic', overrides)
  assert meta['sources'] == {'mt5': '/ckpt'}
  assert meta['vocabulary']['size'] == 2100 == meta['vocabulary']['model_vocab_size']
  assert os.path.exists(meta['vocabulary']['path'])
  assert job_config.read(job) == ('PaliTinySynthetic', overrides)


def test_vocabulary_larger_than_the_model_is_an_error(tmp_path):
  with pytest.raises(ValueError, match='has 2100 ids but VOCAB_SIZE is 1000'):
    job_config.write(str(tmp_path), 'PaliTinySynthetic', {'VOCAB_SIZE': 1000})


def test_read_errors_name_the_job_dir(tmp_path):
  with pytest.raises(ValueError, match=f'{tmp_path} has no pali_pax.json'):
    job_config.read(str(tmp_path))
  (tmp_path / job_config.METADATA_FILE).write_text('{"experiment": ')
  with pytest.raises(FileFormatError, match='pali_pax.json is not valid JSON'):
    job_config.read(str(tmp_path))
