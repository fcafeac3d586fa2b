"""A real `pali-pax serve` subprocess on loopback, and the requests the serving tests send.

`LiveServer.ensure()` starts the server (or a new one after a test stopped it) and waits
until its status endpoint says AVAILABLE (every bucket warm); `predict` posts instances
with `requests`. Images are small random PNGs: each one gives the model a different input.
"""

import base64
import io
import os
import signal
import socket
import subprocess
import time

import numpy as np
import PIL.Image
import requests

from tests import runs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PROMPTS = ['Generate caption in en:', 'Answer in fr: what colour?', 'Generate caption in de:']
# Buckets small enough to compile quickly; the wait long enough that concurrent clients
# on a loaded 2-core machine land in one batch.
BATCH_SIZES = '1,4,8'
BATCH_WAIT_MS = 50
START_TIMEOUT_S = 300


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def png_b64(seed: int, size: tuple[int, int] = (40, 30)) -> str:
  """A random RGB PNG of `size` (width, height), base64."""
  pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
  buf = io.BytesIO()
  PIL.Image.fromarray(pixels).save(buf, 'PNG')
  return base64.b64encode(buf.getvalue()).decode()


def instance(seed: int) -> dict:
  return {'image_b64': png_b64(seed), 'prompt': PROMPTS[seed % len(PROMPTS)]}


class LiveServer:
  """One `pali-pax serve JOB` subprocess; restarted by `ensure` when it has exited."""

  def __init__(self, job_dir: str, log_dir: str, extra_args: tuple[str, ...] = ()) -> None:
    self.job_dir = job_dir
    self.log_dir = log_dir
    self.extra_args = extra_args
    self.proc: subprocess.Popen | None = None
    self.port = 0
    self.starts = 0

  @property
  def url(self) -> str:
    return f'http://127.0.0.1:{self.port}/v1/models/pali'

  def command(self) -> list[str]:
    return runs.cli_command(
      'serve', self.job_dir, '--port', self.port, '--batch_sizes', BATCH_SIZES,
      '--batch_wait_ms', BATCH_WAIT_MS, *self.extra_args,
    )  # fmt: skip

  def ensure(self) -> 'LiveServer':
    if self.proc is not None and self.proc.poll() is None:
      return self
    self.port = free_port()
    self.starts += 1
    self.log_path = os.path.join(self.log_dir, f'serve_{self.starts}.log')
    env = runs.cli_env(JAX_PLATFORMS='cpu')  # the session's compile cache, TF quiet
    with open(self.log_path, 'w') as log:
      self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
      if self.proc.poll() is not None:
        raise AssertionError(f'server exited with {self.proc.returncode}:\n{self.log()}')
      try:
        if requests.get(self.url, timeout=5).status_code == 200:
          return self
      except requests.ConnectionError:
        pass
      time.sleep(0.5)
    self.stop()
    raise AssertionError(f'server not AVAILABLE after {START_TIMEOUT_S} s:\n{self.log()}')

  def log(self) -> str:
    with open(self.log_path) as f:
      return f.read()[-5000:]

  def predict(self, instances: list, timeout: float = 120) -> requests.Response:
    return requests.post(f'{self.url}:predict', json={'instances': instances}, timeout=timeout)

  def metadata(self) -> dict:
    return requests.get(f'{self.url}/metadata', timeout=10).json()['metadata']

  def stop(self) -> None:
    if self.proc is not None and self.proc.poll() is None:
      self.proc.send_signal(signal.SIGTERM)
      try:
        self.proc.wait(60)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------- raw HTTP clients
def raw_request(server: LiveServer, head: bytes) -> socket.socket:
  """A socket that has sent `head` (headers, perhaps part of a body) and no more."""
  sock = socket.create_connection(('127.0.0.1', server.port), timeout=120)
  sock.sendall(head)
  return sock


def request_head(length: int) -> bytes:
  """The request line and headers of a predict request whose body has `length` bytes."""
  return (
    b'POST /v1/models/pali:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
    b'Content-Length: %d\r\n\r\n' % length
  )


def read_response(sock: socket.socket) -> tuple[int, bytes]:
  """(status, body) of the response on `sock` (Content-Length framed)."""
  data = b''
  while b'\r\n\r\n' not in data:
    chunk = sock.recv(65536)
    if not chunk:
      break
    data += chunk
  head, _, body = data.partition(b'\r\n\r\n')
  length = next(
    (int(h.split(b':')[1]) for h in head.split(b'\r\n') if h.lower().startswith(b'content-length')),
    0,
  )
  while len(body) < length:
    chunk = sock.recv(65536)
    if not chunk:
      break
    body += chunk
  return int(head.split(b' ', 2)[1]), body
