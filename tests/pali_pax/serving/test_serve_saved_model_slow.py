"""`pali-pax serve SAVED_MODEL`: the exported SavedModel behind the same API answers as the job.

The server runs in this process (uvicorn in a thread; no subprocess start-up to pay),
the job's answers come from the shared `live_server` subprocess.
"""

import threading
import time

import numpy as np
import pytest
import requests

from pali_pax.serving import backends, saved_model
from pali_pax.serving import server as server_lib
from tests.pali_pax.serving.live_server import free_port, instance

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def saved_model_server(tiny_pax_job, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('saved_model') / 'pali')
  saved_model.export(tiny_pax_job, out, platforms=('cpu',))
  backend = backends.load_backend(out, BATCH_SIZES=(1, 4))
  server, batcher = server_lib.build_server(backend, free_port())
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  url = f'http://127.0.0.1:{server.config.port}/v1/models/pali'
  deadline = time.monotonic() + 300
  while not batcher.ready.is_set() and time.monotonic() < deadline:
    assert batcher.warm_up_error is None, batcher.warm_up_error
    time.sleep(0.2)
  while time.monotonic() < deadline:
    try:
      if requests.get(url, timeout=5).status_code == 200:
        break
    except requests.ConnectionError:
      time.sleep(0.2)
  yield url, backend
  server.should_exit = True
  thread.join(60)
  batcher.close(60)


def test_saved_model_server_answers_as_the_job_server(saved_model_server, live_server):
  url, backend = saved_model_server
  assert backend.kind == 'saved_model'
  meta = requests.get(f'{url}/metadata', timeout=10).json()['metadata']
  assert meta['backend'] == 'saved_model' and meta['BATCH_SIZES'] == [1, 4]
  assert meta['platforms'] == ['cpu']
  rows = [instance(s) for s in range(3)]
  got = requests.post(f'{url}:predict', json={'instances': rows}, timeout=120)
  assert got.status_code == 200, got.text
  want = live_server.predict(rows).json()['predictions']
  got = got.json()['predictions']
  assert [g['text'] for g in got] == [w['text'] for w in want]
  np.testing.assert_allclose([g['score'] for g in got], [w['score'] for w in want], atol=1e-3)


def test_saved_model_server_refuses_by_name_before_the_graph(saved_model_server):
  url, _ = saved_model_server
  long_prompt = {'image_b64': instance(0)['image_b64'], 'prompt': 'Answer in en: ' + 'cat ' * 40}
  r = requests.post(f'{url}:predict', json={'instances': [instance(1), long_prompt]}, timeout=60)
  assert r.status_code == 413 and (r.json()['field'], r.json()['index']) == ('prompt', 1)
  assert requests.post(f'{url}:predict', json={'instances': [instance(1)]}, timeout=60).ok
