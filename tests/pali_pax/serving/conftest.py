"""Fixtures of the server tests: one small job dir and one `pali-pax serve` shared by them.

serving_job  PaliTinySynthetic (mT5 'tiny' with vocab 2100, ViT tiny/8 at 32 px) written
             by `convert_to_pax` from the random checkpoints of tests/conftest.py
live_server  `pali-pax serve serving_job` on a free loopback port (tests/.../live_server.py),
             started once per session; a test that stops it (SIGTERM) gets a new one
             from `live_server.ensure()`
"""

import pytest

from pali_pax.convert.to_pax import convert_to_pax
from tests.pali_pax.serving.live_server import LiveServer

EXP = 'PaliTinySynthetic'
OVERRIDES = {'MODEL': 'tiny', 'IMAGE_SIZE': 32, 'VOCAB_SIZE': 2100}


@pytest.fixture(scope='session')
def serving_job(tmp_path_factory, mt5_hf_2100, vit_npz_tiny8):
  job = str(tmp_path_factory.mktemp('serving_job'))
  convert_to_pax(EXP, job, mt5=mt5_hf_2100, vit=vit_npz_tiny8, seed=5, overrides=OVERRIDES)
  return job


@pytest.fixture(scope='session')
def live_server(serving_job, tmp_path_factory):
  server = LiveServer(serving_job, str(tmp_path_factory.mktemp('serve_logs')))
  yield server.ensure()
  server.stop()
