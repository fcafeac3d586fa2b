"""`pali-pax serve` over real HTTP: status, metadata, and batched answers equal to lone ones."""

import base64
import threading

import numpy as np
import requests

from pali_pax.inference import Predictor
from pali_pax.serving import request_checks
from tests.pali_pax.serving.live_server import instance

N = 12  # instances of the equality test (more than the largest bucket, 8)


def _answers(responses):
  out = []
  for r in responses:
    assert r.status_code == 200, r.text
    out += r.json()['predictions']
  return out


def test_status_and_metadata(live_server):
  r = requests.get(live_server.url, timeout=10)
  assert r.status_code == 200
  assert r.json()['model_version_status'][0]['state'] == 'AVAILABLE'
  meta = live_server.metadata()
  assert meta['backend'] == 'job' and meta['EXPERIMENT'] == 'PaliTinySynthetic'
  assert meta['BATCH_SIZES'] == [1, 4, 8] and meta['BEAM_SIZE'] == 1
  assert meta['limits']['max_input_len'] == meta['MAX_INPUT_LEN']
  assert set(meta['batches_run']) == set(meta['batch_seconds']) == {'1', '4', '8'}


def test_concurrent_answers_equal_one_at_a_time(live_server):
  alone = [_answers([live_server.predict([instance(i)])])[0] for i in range(N)]
  before_meta = live_server.metadata()
  before = before_meta['batches_run']
  # 6 clients at once, 2 instances per request: gathered into buckets of 4 and 8.
  barrier = threading.Barrier(N // 2)
  results: dict[int, requests.Response] = {}

  def client(k: int) -> None:
    barrier.wait()
    results[k] = live_server.predict([instance(2 * k), instance(2 * k + 1)])

  threads = [threading.Thread(target=client, args=(k,)) for k in range(N // 2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(120)
  together = _answers([results[k] for k in range(N // 2)])
  after_meta = live_server.metadata()
  after = after_meta['batches_run']
  assert int(after['4']) + int(after['8']) > int(before['4']) + int(before['8']), after
  for b in ('4', '8'):  # model time is counted where, and only where, batches ran
    ran = after[b] > before[b]
    assert (after_meta['batch_seconds'][b] > before_meta['batch_seconds'][b]) == ran
  assert [a['text'] for a in together] == [a['text'] for a in alone]
  np.testing.assert_allclose(
    [a['score'] for a in together], [a['score'] for a in alone], rtol=1e-4, atol=1e-4
  )
  # The answers depend on each instance's image and prompt, so a mixed-up row would show.
  assert len({round(a['score'], 3) for a in alone}) == N
  assert all(a['score'] < 0 for a in alone)


def test_answer_equals_the_predictor_on_the_same_image(live_server, tiny_pax_job):
  """The server decodes images as the tasks do and decodes greedily as the Predictor."""
  row = instance(3)
  served = _answers([live_server.predict([row])])[0]
  predictor = Predictor.from_checkpoint(tiny_pax_job)
  exp = predictor.experiment
  pixels = request_checks.decode_pixels(base64.b64decode(row['image_b64']), 0, exp.IMAGE_SIZE)
  text = predictor.generate(pixels[None], [row['prompt']], max_decode_steps=exp.MAX_DECODE_LEN)
  assert served['text'] == text[0]
