"""SIGTERM to `pali-pax serve`: requests in flight are answered, new ones get 503, exit 0.

A client that has sent its headers and part of its body is in flight for certain when
the signal arrives; it finishes sending afterwards and must still get its answer.
"""

import json
import signal
import threading
import time

import requests

from tests.pali_pax.serving.live_server import instance, raw_request, read_response, request_head


def test_sigterm_drains_in_flight_requests_and_exits_0(live_server):
  server = live_server.ensure()
  expected = server.predict([instance(1)]).json()
  body = json.dumps({'instances': [instance(1)]}).encode()
  in_flight = raw_request(server, request_head(len(body)) + body[:50])
  answers: list[requests.Response] = []
  batch = [instance(s) for s in range(8)]
  sender = threading.Thread(target=lambda: answers.append(server.predict(batch)))
  sender.start()
  time.sleep(0.2)
  server.proc.send_signal(signal.SIGTERM)
  time.sleep(0.5)  # the signal is handled on the server's event loop

  refused = requests.post(f'{server.url}:predict', json={'instances': [instance(2)]}, timeout=30)
  assert refused.status_code == 503 and 'shutting down' in refused.json()['error']
  assert requests.get(server.url, timeout=10).status_code == 503
  assert server.proc.poll() is None  # still up: a request is in flight

  with in_flight:
    in_flight.sendall(body[50:])
    status, answer = read_response(in_flight)
  assert status == 200 and json.loads(answer) == expected
  sender.join(120)
  assert answers and answers[0].status_code == 200, answers
  assert len(answers[0].json()['predictions']) == len(batch)
  assert server.proc.wait(60) == 0, server.log()
