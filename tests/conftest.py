"""Session set-up of every test run, and checkpoints written once per session.

Set-up (pytest_configure): `pali-pax` commands that tests start, and the tests' own
jax programs, cache their compiled programs in a folder of this pytest process (one per
xdist worker), never in the user's ~/.cache, so a rerun of a program within the session
loads it and no two processes write one entry. Slow tests live only in files named `*_slow.py`, each
marked `pytestmark = pytest.mark.slow` (`make test-slow`); a test that breaks this fails.

Fixtures:

  mt5_hf_2100   HF mT5 directory: mT5 'tiny' dims (as PaliTinySynthetic), vocab 2100
                (the shipped synthetic SentencePiece model), 32 buckets / distance 128
  vit_npz_tiny8 big_vision .npz of ViT 'tiny/8' at 32 px (PaliTinySynthetic's ViT)
  make_coco_dir `tests/fixtures/coco_data.make_coco_dir(root, n_train, n_val)`: a COCO
                captions 2014 folder (real JPEGs, official annotation JSON)
  mt5_t5x_dir   mt5_hf_2100 as a T5X checkpoint (T5X stores no max distance: its
                network.py hard-codes mT5's 128, which is what a loader assumes)
  tiny_pax_job  a Pax job dir of PaliTinySynthetic (seed 5) converted from mt5_hf_2100 and
                vit_npz_tiny8 by `convert_to_pax`; tests/tiny_job.py pins its sizes. Read-only.
  tiny_predictor  `Predictor.from_components` of mt5_hf_2100 + vit_npz_tiny8 with the shipped
                vocabulary; a test that changes an attribute restores it.
  absl_flags_parsed  absl's flags marked parsed with their defaults, as paxml.main leaves
                them: paxml's init rules read them (--pmap_use_tensorstore). Request it with
                `pytest.mark.usefixtures('absl_flags_parsed')`.

Random values (std 0.3) so every tensor matters; names and layouts are taken from
the committed fixtures, only the vocabulary / bucket / patch shapes change.
"""

import importlib.util
import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from safetensors import numpy as st_numpy

from pali_pax.convert.to_pax import convert_to_pax
from pali_pax.inference import Predictor
from pali_pax.tasks import vocab as vocab_lib
from tests import tiny_job
from tests.paths import FIXTURES, MT5_HF, TESTS, VIT_NPZ

MT5_CONVERT_TESTS = os.path.join(TESTS, 'pali_pax', 'convert', 'test_mt5_convert.py')
SLOW_SUFFIX = '_slow.py'
_CACHE_DIR = []


def pytest_configure(config):
  # Set before xdist starts its workers, and again in each worker (its own folder).
  _CACHE_DIR.append(tempfile.mkdtemp(prefix='pali_pax_test_jax_cache_'))
  os.environ['PALI_PAX_CACHE_DIR'] = _CACHE_DIR[-1]
  # Tests build the same tiny programs again and again (a new Predictor or model is a new
  # jit function, so jax's in-memory cache misses); keyed by HLO, the disk cache loads them.
  # Measured on 5 in-process test files, one worker: 301 s without, 246 s with.
  import jax

  jax.config.update('jax_compilation_cache_dir', os.path.join(_CACHE_DIR[-1], 'in_process'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)


def pytest_unconfigure(config):
  for path in _CACHE_DIR:
    shutil.rmtree(path, ignore_errors=True)


def _marked_slow(obj) -> bool:
  marks = getattr(obj, 'pytestmark', [])
  return any(m.name == 'slow' for m in (marks if isinstance(marks, list) else [marks]))


_SLOW_PROBLEM = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)  # before `-m 'not slow'` deselects the slow ones
def pytest_collection_modifyitems(config, items):
  """One slow convention: a `*_slow.py` file marked slow as a whole, and no slow test elsewhere.

  A test that breaks it loses its slow mark, so that every run selects it, and fails.
  Then the files are put in LONG_FIRST's order.
  """
  _check_slow_convention(items)
  items.sort(key=lambda item: _rank(item.nodeid))  # stable: the order within a file stays


def _check_slow_convention(items) -> None:
  for item in items:
    in_slow_file = str(item.path).endswith(SLOW_SUFFIX)
    if in_slow_file and not _marked_slow(getattr(item, 'module', None)):
      problem = f'a *{SLOW_SUFFIX} file needs `pytestmark = pytest.mark.slow`'
    elif not in_slow_file and item.get_closest_marker('slow') is not None:
      problem = f'marked slow outside a *{SLOW_SUFFIX} file: move it to one'
    else:
      continue
    item.stash[_SLOW_PROBLEM] = f'slow convention (tests/conftest.py): {problem}'
    for node in item.listchain():
      node.own_markers[:] = [m for m in node.own_markers if m.name != 'slow']


# The longest files (and the serving tests, which share one `pali-pax serve` process) go
# to the xdist workers first, so that neither worker ends the run alone with one of them.
LONG_FIRST = (
  'tests/fiddle_configs/test_paxml_train.py',  # two paxml.main runs
  'tests/pali_pax/serving/',
  'tests/pali_pax/test_model.py',
  'tests/layers/test_vit.py',
)
ONE_WORKER = ('tests/pali_pax/serving/',)  # scopes whose files share a session fixture


def _rank(nodeid: str) -> int:
  return next((i for i, p in enumerate(LONG_FIRST) if nodeid.startswith(p)), len(LONG_FIRST))


def pytest_xdist_make_scheduler(config, log):
  """xdist's `--dist loadfile` in collection order, with each ONE_WORKER folder one unit."""
  from xdist.scheduler import LoadFileScheduling  # here: called only when xdist runs

  class Scheduling(LoadFileScheduling):
    def _split_scope(self, nodeid: str) -> str:
      return next((p for p in ONE_WORKER if nodeid.startswith(p)), super()._split_scope(nodeid))

  config.option.loadscopereorder = False  # keep LONG_FIRST's order (not: most tests first)
  return Scheduling(config, log)


def pytest_runtest_setup(item):
  if problem := item.stash.get(_SLOW_PROBLEM, None):
    pytest.fail(problem, pytrace=False)


def mt5_convert_helpers():
  """tests/pali_pax/convert/test_mt5_convert.py as a module (its `hf_to_t5x`, `write_t5x`)."""
  spec = importlib.util.spec_from_file_location('_mt5_convert_helpers', MT5_CONVERT_TESTS)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def write_random_hf_mt5(directory, vocab_size=2100, buckets=32, max_distance=128, seed=0):
  """The fixture's HF mT5 layout with a new vocabulary / bucket count, random values."""
  rng = np.random.default_rng(seed)
  tensors = st_numpy.load_file(os.path.join(MT5_HF, 'model.safetensors'))
  out = {}
  for name, value in tensors.items():
    shape = list(value.shape)
    if name in ('shared.weight', 'lm_head.weight'):
      shape[0] = vocab_size
    if 'relative_attention_bias' in name:
      shape[0] = buckets
    base = 1.0 if 'layer_norm' in name else 0.0
    out[name] = (base + 0.3 * rng.standard_normal(shape)).astype(np.float32)
  with open(os.path.join(MT5_HF, 'config.json')) as f:
    config = json.load(f)
  config.update(
    vocab_size=vocab_size,
    relative_attention_num_buckets=buckets,
    relative_attention_max_distance=max_distance,
  )
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, 'config.json'), 'w') as f:
    json.dump(config, f)
  st_numpy.save_file(out, os.path.join(directory, 'model.safetensors'))
  return str(directory)


def write_random_vit_npz(path, patch=8, seed=0):
  """The fixture's big_vision layout (width 32, depth 2, 16 tokens) with patch `patch`."""
  rng = np.random.default_rng(seed)
  with np.load(VIT_NPZ) as npz:
    arrays = {k: npz[k] for k in npz.files}
  out = {}
  for name, value in arrays.items():
    shape = (patch, patch, 3, value.shape[-1]) if name == 'embedding/kernel' else value.shape
    base = 1.0 if name.endswith('/scale') else 0.0
    out[name] = (base + 0.3 * rng.standard_normal(shape)).astype(np.float32)
  np.savez(path, **out)
  return str(path)


@pytest.fixture(scope='session')
def absl_flags_parsed():
  from absl import flags

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope='session')
def make_coco_dir():
  spec = importlib.util.spec_from_file_location(
    '_coco_data', os.path.join(FIXTURES, 'coco_data.py')
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.make_coco_dir


@pytest.fixture(scope='session')
def mt5_hf_2100(tmp_path_factory):
  return write_random_hf_mt5(tmp_path_factory.mktemp('mt5_hf_2100'))


@pytest.fixture(scope='session')
def vit_npz_tiny8(tmp_path_factory):
  return write_random_vit_npz(tmp_path_factory.mktemp('vit') / 'vit_tiny8_32px.npz')


@pytest.fixture(scope='session')
def mt5_t5x_dir(tmp_path_factory, mt5_hf_2100):
  helpers = mt5_convert_helpers()
  tensors = st_numpy.load_file(os.path.join(mt5_hf_2100, 'model.safetensors'))
  return helpers.write_t5x(tmp_path_factory.mktemp('mt5_t5x'), helpers.hf_to_t5x(tensors))


@pytest.fixture(scope='session')
def tiny_pax_job(tmp_path_factory, mt5_hf_2100, vit_npz_tiny8):
  job = str(tmp_path_factory.mktemp('tiny_pax_job'))
  written = convert_to_pax(
    tiny_job.EXP, job, mt5=mt5_hf_2100, vit=vit_npz_tiny8, seed=5, overrides=tiny_job.OVERRIDES
  )
  assert written == os.path.join(job, 'checkpoints', 'checkpoint_00000000')
  return job


@pytest.fixture(scope='session')
def tiny_predictor(mt5_hf_2100, vit_npz_tiny8):
  return Predictor.from_components(
    mt5=mt5_hf_2100, vit=vit_npz_tiny8, vocab=vocab_lib.DEFAULT_VOCAB_PATH
  )
