"""Fixtures of the server tests: one small job dir and one `pali-pax serve` shared by them.

serving_job  PaliTinySynthetic (mT5 'tiny' with vocab 2100, ViT tiny/8 at 32 px) written
             by `convert_to_pax` from the random checkpoints: tests/conftest.py's tiny_pax_job
live_server  `pali-pax serve serving_job` on a free loopback port (tests/.../live_server.py),
             started once per session; a test that stops it (SIGTERM) gets a new one
             from `live_server.ensure()`
"""

import pytest

from tests.pali_pax.serving.live_server import LiveServer


@pytest.fixture(scope='session')
def serving_job(tiny_pax_job):
  return tiny_pax_job


@pytest.fixture(scope='session')
def live_server(serving_job, tmp_path_factory):
  server = LiveServer(serving_job, str(tmp_path_factory.mktemp('serve_logs')))
  yield server.ensure()
  server.stop()
