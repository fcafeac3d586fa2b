"""Bad requests are refused by name (HTTP 400 / 413, field and instance index) and harm no one.

Each case of docs/reliability.md ("Serving: bad requests") is one row of CASES; the
interleaving test sends them from concurrent clients between good requests, whose
answers must equal those of a quiet server.
"""

import base64
import json
import struct
import threading
import time
import zlib

import pytest
import requests

from tests.pali_pax.serving.live_server import (
  instance,
  png_b64,
  raw_request,
  read_response,
  request_head,
)


def _png_header(width: int, height: int) -> bytes:
  """A PNG that declares width x height (valid chunks) with only a few bytes of pixel data."""

  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

  ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
  idat = zlib.compress(b'\0' * 1000)
  return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', idat) + chunk(b'IEND', b'')


def _b64(data: bytes) -> str:
  return base64.b64encode(data).decode()


GOOD = instance(0)
PROMPT = GOOD['prompt']
TRUNCATED_PNG = base64.b64decode(png_b64(7))[:60]  # a real header, the pixel data cut off

# name -> (request body: a JSON-able object or raw bytes, status, field, instance index)
CASES = {
  'invalid_base64': ({'instances': [GOOD, {'image_b64': 'not base64!', 'prompt': PROMPT}]}, 400, 'image_b64', 1),
  'bytes_no_image': ({'instances': [{'image_b64': _b64(b'hello ' * 40), 'prompt': PROMPT}]}, 400, 'image_b64', 0),
  'truncated_image': ({'instances': [GOOD, GOOD, {'image_b64': _b64(TRUNCATED_PNG), 'prompt': PROMPT}]}, 400, 'image_b64', 2),
  'empty_image': ({'instances': [{'image_b64': '', 'prompt': PROMPT}]}, 400, 'image_b64', 0),
  'image_50_megapixels': ({'instances': [GOOD, {'image_b64': _b64(_png_header(10_000, 5_000)), 'prompt': PROMPT}]}, 413, 'image_b64', 1),
  'prompt_100k_chars': ({'instances': [{'image_b64': GOOD['image_b64'], 'prompt': 'Answer in en: ' + 'x' * 100_000}]}, 413, 'prompt', 0),
  'prompt_too_many_tokens': ({'instances': [{'image_b64': GOOD['image_b64'], 'prompt': 'Answer in en: ' + 'cat ' * 40}]}, 413, 'prompt', 0),
  'prompt_empty': ({'instances': [{'image_b64': GOOD['image_b64'], 'prompt': ''}]}, 400, 'prompt', 0),
  'prompt_unknown_language': ({'instances': [{'image_b64': GOOD['image_b64'], 'prompt': 'Answer in qq: hi'}]}, 400, 'prompt', 0),
  'prompt_not_string': ({'instances': [GOOD, {'image_b64': GOOD['image_b64'], 'prompt': 5}]}, 400, 'prompt', 1),
  'image_not_string': ({'instances': [{'image_b64': [1, 2], 'prompt': PROMPT}]}, 400, 'image_b64', 0),
  'instance_not_object': ({'instances': [GOOD, 'a string']}, 400, 'instance', 1),
  'instances_not_list': ({'instances': {'image_b64': GOOD['image_b64']}}, 400, 'instances', None),
  'body_not_object': ([GOOD], 400, None, None),
  'missing_instances': ({'inputs': [GOOD]}, 400, 'instances', None),
  'missing_prompt': ({'instances': [{'image_b64': GOOD['image_b64']}]}, 400, 'prompt', 0),
  'missing_image': ({'instances': [GOOD, {'prompt': PROMPT}]}, 400, 'image_b64', 1),
  'unknown_field': ({'instances': [dict(GOOD, temperature=0.5)]}, 400, 'temperature', 0),
  'no_instances': ({'instances': []}, 400, 'instances', None),
  'instances_10000': ({'instances': [{'image_b64': 'AA==', 'prompt': PROMPT}] * 10_000}, 413, 'instances', None),
  'not_json': (b'{"instances": [', 400, None, None),
  'not_utf8': (b'\xff\xfe{}', 400, None, None),
}  # fmt: skip


def _post(server, body) -> requests.Response:
  data = body if isinstance(body, bytes) else json.dumps(body).encode()
  headers = {'Content-Type': 'application/json'}
  return requests.post(f'{server.url}:predict', data=data, headers=headers, timeout=120)


def _check_refusal(r: requests.Response, status: int, field: str | None, index: int | None) -> None:
  assert r.status_code == status, r.text
  error = r.json()
  assert (error['field'], error['index']) == (field, index), error
  if field is not None:
    assert field in error['error']


@pytest.mark.parametrize('name', sorted(CASES))
def test_bad_request_is_refused_by_name(live_server, name):
  body, status, field, index = CASES[name]
  _check_refusal(_post(live_server, body), status, field, index)


def test_declared_oversize_body_is_refused_before_it_is_sent(live_server):
  with raw_request(live_server, request_head(1 << 30)) as sock:  # 1 GiB declared, none sent
    status, body = read_response(sock)
  assert status == 413 and 'exceeds the limit' in json.loads(body)['error']


def test_slow_and_vanishing_clients_block_no_one(live_server):
  body = json.dumps({'instances': [GOOD]}).encode()
  expected = live_server.predict([GOOD]).json()
  slow = raw_request(live_server, request_head(len(body)) + body[:20])
  gone = raw_request(live_server, request_head(len(body)) + body[:30])
  gone.close()  # disconnects mid-body
  start = time.monotonic()
  for seed in range(3):  # served while the slow client still owes its body
    assert live_server.predict([instance(seed)], timeout=60).status_code == 200
  assert time.monotonic() - start < 30
  with slow:
    for i in range(20, len(body), 200):  # the rest, a little at a time
      slow.sendall(body[i : i + 200])
      time.sleep(0.01)
    status, answer = read_response(slow)
  assert status == 200 and json.loads(answer) == expected
  assert live_server.predict([GOOD]).json() == expected


def test_bad_requests_interleaved_with_good_ones(live_server):
  """Concurrent clients mix bad and good requests; good answers are those of a quiet server."""
  seeds = range(10, 18)
  quiet = {s: live_server.predict([instance(s)]).json()['predictions'][0] for s in seeds}
  names = sorted(CASES)
  failures: list[str] = []

  def client(k: int) -> None:
    try:
      for j, seed in enumerate(seeds):
        if (j + k) % 2:
          body, status, field, index = CASES[names[(j * 4 + k) % len(names)]]
          _check_refusal(_post(live_server, body), status, field, index)
        else:
          r = live_server.predict([instance(seed)])
          assert r.status_code == 200, r.text
          got = r.json()['predictions'][0]
          assert got['text'] == quiet[seed]['text'], (seed, got, quiet[seed])
          assert abs(got['score'] - quiet[seed]['score']) < 1e-3, (seed, got, quiet[seed])
    except AssertionError as e:
      failures.append(f'client {k}: {e}')

  threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(300)
  assert not failures, failures
  assert requests.get(live_server.url, timeout=10).status_code == 200
  assert live_server.predict([instance(10)]).json()['predictions'][0] == quiet[10]
