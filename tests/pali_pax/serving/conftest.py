"""The `pali-pax serve` subprocess shared by the server tests.

live_server  `pali-pax serve` of conftest's `tiny_pax_job` (PaliTinySynthetic: mT5 'tiny'
             with vocab 2100, ViT tiny/8 at 32 px, converted from the random fixture
             checkpoints) on a free loopback port (tests/pali_pax/serving/live_server.py),
             started once per session (per xdist worker); a test that stops it (SIGTERM)
             gets a new one from `live_server.ensure()`
"""

import pytest

from tests.pali_pax.serving.live_server import LiveServer


@pytest.fixture(scope='session')
def live_server(tiny_pax_job, tmp_path_factory):
  server = LiveServer(tiny_pax_job, str(tmp_path_factory.mktemp('serve_logs')))
  yield server.ensure()
  server.stop()
