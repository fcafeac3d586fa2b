"""`pali-pax serve`: TF Serving's REST predict API over FastAPI + uvicorn, batched dynamically.

    POST /v1/models/pali:predict   {"instances": [{"image_b64": ..., "prompt": ...}, ...]}
                                   -> {"predictions": [{"text": ..., "score": ...}, ...]}
                                   (+ "tokens", the count generated, from a job dir)
    GET  /v1/models/pali           status: 200 AVAILABLE once every bucket is warm,
                                   503 LOADING before (or UNAVAILABLE while draining)
    GET  /v1/models/pali/metadata  the servable's settings and the backend

A request is read and checked on the event loop and in worker threads (`request_checks`:
refused by name with 400 / 413), its instances are queued to the `Batcher`, whose one
thread runs the model; the handler awaits the futures, so the event loop never waits on
inference and a slow or vanished client delays nobody else.

SIGTERM (or Ctrl-C): new requests get 503, the requests in flight are answered, then
the server stops and `serve` returns 0.
"""

import asyncio
import json
import logging
import threading
import time
from typing import Any

import anyio
import fastapi
import uvicorn
from fastapi import responses
from starlette.requests import ClientDisconnect

from pali_pax.serving import backends, request_checks
from pali_pax.serving import batcher as batcher_lib

MODEL_NAME = 'pali'
PREDICT_PATH = f'/v1/models/{MODEL_NAME}:predict'
STATUS_PATH = f'/v1/models/{MODEL_NAME}'
METADATA_PATH = f'/v1/models/{MODEL_NAME}/metadata'

# After SIGTERM, how long requests in flight may take before the server stops anyway.
DRAIN_TIMEOUT_S = 60.0

log = logging.getLogger(__name__)


class ServerState:
  """What the handlers and the shutdown share: draining flag and requests in flight."""

  def __init__(self) -> None:
    self.draining = False
    self.inflight = 0
    self._lock = threading.Lock()

  def enter(self) -> None:
    with self._lock:
      self.inflight += 1

  def leave(self) -> None:
    with self._lock:
      self.inflight -= 1


def _error(status: int, message: str, field: str | None = None) -> responses.JSONResponse:
  return responses.JSONResponse({'error': message, 'field': field, 'index': None}, status)


async def _read_body(request: fastapi.Request, limit: int) -> bytes:
  """The body, refused (413) as soon as it is known to exceed `limit` bytes."""
  declared = request.headers.get('content-length')
  if declared is not None and declared.isdigit() and int(declared) > limit:
    raise request_checks.BadRequestError(
      f'body of {declared} bytes exceeds the limit of {limit}', status=413
    )
  chunks, size = [], 0
  async for chunk in request.stream():
    size += len(chunk)
    if size > limit:
      raise request_checks.BadRequestError(f'body exceeds the limit of {limit} bytes', status=413)
    chunks.append(chunk)
  return b''.join(chunks)


def create_app(
  backend: Any, batcher: batcher_lib.Batcher, state: ServerState | None = None
) -> fastapi.FastAPI:
  """The FastAPI app serving `backend` through `batcher` (already started)."""
  state = state or ServerState()
  limits: request_checks.Limits = backend.limits
  app = fastapi.FastAPI(title='pali_pax', docs_url=None, redoc_url=None, openapi_url=None)
  app.state.serving = state

  def prepare(rows: list[dict[str, str]]) -> list[request_checks.Instance]:
    return [
      request_checks.prepare(row, i, limits, backend.encode, backend.image_size)
      for i, row in enumerate(rows)
    ]

  @app.post(PREDICT_PATH)
  async def predict(request: fastapi.Request) -> fastapi.Response:
    if state.draining:
      return _error(503, 'the server is shutting down')
    state.enter()
    try:
      body = await _read_body(request, limits.max_body_bytes)
      try:
        payload = json.loads(body)
      except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, deep nesting
        raise request_checks.BadRequestError(f'the body is not valid JSON ({e})') from e
      rows = request_checks.parse_instances(payload, limits)
      instances = await anyio.to_thread.run_sync(prepare, rows)
      futures = batcher.submit(instances)
      try:
        results = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
      except asyncio.CancelledError:
        for f in futures:  # the client went away: drop its rows not yet started
          f.cancel()
        raise
      predictions = [r.to_json() for r in results]
      return responses.JSONResponse({'predictions': predictions})
    except request_checks.BadRequestError as e:
      return responses.JSONResponse(e.to_json(), e.status)
    except ClientDisconnect:
      return fastapi.Response(status_code=400)  # nobody reads it; the connection is gone
    except Exception as e:  # a bug or a failed model: a JSON 500, the server goes on
      log.exception('predict failed')
      return _error(500, f'internal error: {type(e).__name__}: {e}')
    finally:
      state.leave()

  @app.get(STATUS_PATH)
  async def status() -> fastapi.Response:
    if batcher.warm_up_error is not None:
      name, code, message = 'END', 500, f'warm-up failed: {batcher.warm_up_error!r}'
    elif state.draining:
      name, code, message = 'UNAVAILABLE', 503, 'shutting down'
    elif not batcher.ready.is_set():
      name, code, message = 'LOADING', 503, 'warming up the batch buckets'
    else:
      name, code, message = 'AVAILABLE', 200, ''
    body = {
      'model_version_status': [
        {
          'version': '1',
          'state': name,
          'status': {
            'error_code': 'OK' if code == 200 else 'UNAVAILABLE',
            'error_message': message,
          },
        }
      ]
    }
    return responses.JSONResponse(body, code)

  @app.get(METADATA_PATH)
  async def metadata() -> dict[str, Any]:
    return {
      'model_spec': {'name': MODEL_NAME, 'version': '1'},
      'metadata': {
        **backend.metadata(),
        'limits': {
          'max_body_bytes': limits.max_body_bytes,
          'max_instances': limits.max_instances,
          'max_image_pixels': limits.max_image_pixels,
          'max_input_len': limits.max_input_len,
        },
        'batches_run': {str(k): v for k, v in batcher.batches_run.items()},
        'batch_seconds': {str(k): round(v, 3) for k, v in batcher.batch_seconds.items()},
      },
    }

  return app


class DrainingServer(uvicorn.Server):
  """uvicorn, except that SIGTERM / SIGINT drain: 503 for new requests, stop at 0 in flight.

  uvicorn itself would close the listening socket at once (new clients see a refused
  connection, not an answer) and re-raise the signal after shutdown (exit code -15).
  """

  def __init__(
    self, config: uvicorn.Config, state: ServerState, drain_timeout_s: float = DRAIN_TIMEOUT_S
  ) -> None:
    super().__init__(config)
    self.serving_state = state
    self.drain_timeout_s = drain_timeout_s
    self._drain_since: float | None = None

  def handle_exit(self, sig: int, frame: Any) -> None:
    if self.serving_state.draining:  # a second signal: stop without waiting
      self.should_exit = True
    self.serving_state.draining = True
    self._drain_since = self._drain_since or time.monotonic()

  async def on_tick(self, counter: int) -> bool:
    if self._drain_since is not None:
      # A client that never finishes sending its body must not keep the server up forever.
      overdue = time.monotonic() - self._drain_since > self.drain_timeout_s
      if self.serving_state.inflight == 0 or overdue:
        self.should_exit = True
    return await super().on_tick(counter)


def build_server(
  backend: Any, port: int, host: str = '127.0.0.1'
) -> tuple[DrainingServer, batcher_lib.Batcher]:
  """The uvicorn server of `backend` and its started batcher (warming up); `run()` serves."""
  backend.encode(backends.WARM_UP_PROMPT)  # loads the tokenizer before any request thread
  batcher = batcher_lib.Batcher(backend.run_batch, backend.batch_sizes, backend.batch_wait_ms)
  batcher.start(warm_up=backend.warm_up)
  state = ServerState()
  app = create_app(backend, batcher, state)
  config = uvicorn.Config(app, host=host, port=port, log_level='warning', access_log=False)
  return DrainingServer(config, state), batcher


def serve(backend: Any, port: int, host: str = '127.0.0.1') -> int:
  """Serves `backend` until SIGTERM / SIGINT; returns the exit code (0 after draining)."""
  server, batcher = build_server(backend, port, host)
  server.run()
  batcher.close(timeout=60)
  return 0 if batcher.warm_up_error is None else 1


def serve_path(
  path: str, port: int, host: str = '127.0.0.1', servable: str | None = None, **settings: Any
) -> int:
  """`pali-pax serve PATH`: loads the job dir or SavedModel at `path` and serves it.

  `settings`: UPPERCASE servable overrides (BATCH_SIZES, BATCH_WAIT_MS, ...).
  """
  backend = backends.load_backend(path, servable, **settings)
  print(f'serving {path} ({backend.kind}) on http://{host}:{port}{PREDICT_PATH}', flush=True)
  return serve(backend, port, host)
