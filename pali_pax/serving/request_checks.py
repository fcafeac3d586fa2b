"""Checks of a predict request, cheapest first, each failure naming the field and instance.

A request body is `{"instances": [{"image_b64": <base64 JPEG/PNG/GIF/BMP>, "prompt": <str>}]}`
(TF Serving's row format). What is refused, and how (HTTP status, `BadRequestError`):

  413  the body is larger than `Limits.max_body_bytes` (read no further)
  400  the body is not JSON, not an object, or has no list `instances`
  413  more than `Limits.max_instances` instances (nothing decoded)
  400  an instance that is not an object, a missing / non-string `image_b64` or
       `prompt`, an unknown field, invalid base64, bytes that are no image, an
       empty prompt or one naming an unknown language
  413  an image whose header declares more than `Limits.max_image_pixels` pixels
       (read by PIL from the header, before any pixel is decoded), a prompt of
       more than MAX_INPUT_LEN tokens (eos included; never truncated)

The structure of every instance is checked before any image is decoded, so a bad
instance late in a request costs no decoding of the good ones before it.
"""

import base64
import binascii
import dataclasses
import io
from typing import Any

import numpy as np
import PIL.Image
import tensorflow as tf

from pali_pax import validation
from pali_pax.core import errors
from pali_pax.tasks import image_ops

FIELDS = ('image_b64', 'prompt')
# Instances per request: a client batching more splits them over requests; the server
# batches across requests itself, so large requests gain nothing but queueing latency.
MAX_INSTANCES = 64
MAX_BODY_BYTES = 32 * 1024 * 1024
# A prompt of more than this many characters per allowed token is refused without
# tokenizing it (bounds the cost of a huge prompt): real text averages 2-6 characters
# per SentencePiece token, so such a prompt is far over MAX_INPUT_LEN anyway.
_CHARS_PER_TOKEN_BOUND = 16


class BadRequestError(errors.InputValidationError):
  """A predict request the server refuses; `status` 400 or 413, `field` / `index` name the input."""

  def __init__(
    self, message: str, field: str | None = None, index: int | None = None, status: int = 400
  ) -> None:
    where = field if index is None else f'instances[{index}].{field}'
    super().__init__(f'{where}: {message}' if where else message)
    self.field = field
    self.index = index
    self.status = status

  def to_json(self) -> dict[str, Any]:
    """The response body: TF Serving's `error` string plus the field and instance index."""
    return {'error': str(self), 'field': self.field, 'index': self.index}


@dataclasses.dataclass(frozen=True)
class Limits:
  """What one request may hold. `from_servable` reads them from the servable's settings."""

  max_input_len: int
  max_body_bytes: int = MAX_BODY_BYTES
  max_instances: int = MAX_INSTANCES
  max_image_pixels: int = image_ops.MAX_IMAGE_PIXELS

  @classmethod
  def from_servable(cls, servable: Any) -> 'Limits':
    """MAX_INPUT_LEN from the servable; MAX_BODY_BYTES / MAX_INSTANCES / MAX_IMAGE_PIXELS
    when the servable class sets them, else this module's defaults."""
    return cls(
      max_input_len=int(servable.MAX_INPUT_LEN),
      max_body_bytes=int(getattr(servable, 'MAX_BODY_BYTES', MAX_BODY_BYTES)),
      max_instances=int(getattr(servable, 'MAX_INSTANCES', MAX_INSTANCES)),
      max_image_pixels=int(getattr(servable, 'MAX_IMAGE_PIXELS', image_ops.MAX_IMAGE_PIXELS)),
    )


@dataclasses.dataclass
class Instance:
  """One checked instance: the image bytes, its pixels (when decoded) and prompt ids."""

  image: bytes
  prompt: str
  prompt_ids: list[int]
  pixels: np.ndarray | None = None


def parse_instances(payload: Any, limits: Limits) -> list[dict[str, str]]:
  """The `instances` of a parsed JSON body, structure and types checked (nothing decoded)."""
  if not isinstance(payload, dict):
    raise BadRequestError(f'the body must be a JSON object, got {type(payload).__name__}')
  if 'instances' not in payload:
    raise BadRequestError('missing field (the body must be {"instances": [...]})', 'instances')
  unknown = sorted(set(payload) - {'instances', 'signature_name'})
  if unknown:
    raise BadRequestError(f'unknown fields {unknown}', unknown[0])
  rows = payload['instances']
  if not isinstance(rows, list):
    raise BadRequestError(f'must be a list, got {_json_type(rows)}', 'instances')
  if not rows:
    raise BadRequestError('is empty; send at least one instance', 'instances')
  if len(rows) > limits.max_instances:
    raise BadRequestError(
      f'{len(rows)} instances exceed the limit of {limits.max_instances} per request',
      'instances',
      status=413,
    )
  for i, row in enumerate(rows):
    _check_row(row, i)
  return rows


def _check_row(row: Any, index: int) -> None:
  if not isinstance(row, dict):
    raise BadRequestError(f'must be an object, got {_json_type(row)}', 'instance', index)
  for field in FIELDS:
    if field not in row:
      raise BadRequestError('missing field', field, index)
    if not isinstance(row[field], str):
      raise BadRequestError(f'must be a string, got {_json_type(row[field])}', field, index)
  unknown = sorted(set(row) - set(FIELDS))
  if unknown:
    raise BadRequestError(f'unknown field (expected {list(FIELDS)})', unknown[0], index)


def _json_type(value: Any) -> str:
  names = {dict: 'object', list: 'array', str: 'string', bool: 'boolean', type(None): 'null'}
  return names.get(type(value), 'number')


def decode_b64(text: str, index: int) -> bytes:
  """Strict base64 (standard or URL-safe alphabet) -> bytes; 400 naming image_b64."""
  try:
    return base64.b64decode(text.replace('-', '+').replace('_', '/'), validate=True)
  except (binascii.Error, ValueError) as e:
    raise BadRequestError(f'invalid base64 ({e})', 'image_b64', index) from e


def check_image_header(data: bytes, index: int, limits: Limits) -> None:
  """400 unless `data` starts like an image; 413 if its header declares too many pixels.

  PIL reads the header only (`Image.open` is lazy), so a small file declaring a huge
  image is refused before anything is allocated for its pixels.
  """
  if not data:
    raise BadRequestError('is empty (an image is required)', 'image_b64', index)
  try:
    with PIL.Image.open(io.BytesIO(data)) as img:
      width, height = img.size
  except (PIL.Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
    # DecompressionBombError: PIL's own guard (> 2x its limit) fires inside open().
    if isinstance(e, PIL.Image.DecompressionBombError):
      raise BadRequestError(f'image too large ({e})', 'image_b64', index, 413) from e
    raise BadRequestError(f'not a readable image ({type(e).__name__})', 'image_b64', index) from e
  if width * height > limits.max_image_pixels:
    raise BadRequestError(
      f'image of {width}x{height} = {width * height} pixels exceeds the limit of '
      f'{limits.max_image_pixels}',
      'image_b64',
      index,
      413,
    )


def check_prompt(prompt: str, index: int, limits: Limits, encode: Any) -> list[int]:
  """The prompt's token ids (without eos): 400 if empty / unknown language, 413 if too long."""
  if len(prompt) > limits.max_input_len * _CHARS_PER_TOKEN_BOUND:
    raise BadRequestError(
      f'{len(prompt)} characters is longer than MAX_INPUT_LEN={limits.max_input_len} tokens',
      'prompt',
      index,
      413,
    )
  try:
    validation.check_prompts([prompt])
  except errors.InputValidationError as e:
    raise BadRequestError(str(e), 'prompt', index) from e
  ids = [int(t) for t in encode(prompt)]
  if len(ids) + 1 > limits.max_input_len:  # + eos
    raise BadRequestError(
      f'{len(ids) + 1} tokens (eos included) exceed MAX_INPUT_LEN={limits.max_input_len}',
      'prompt',
      index,
      413,
    )
  return ids


def decode_pixels(data: bytes, index: int, image_size: int) -> np.ndarray:
  """float32 [image_size, image_size, 3] in [-1, 1], decoded and resized as the tasks do
  (`tasks.image_ops`); 400 naming image_b64 when the bytes do not decode."""
  try:
    image = image_ops.decode_image(tf.constant(data))
    return image_ops.resize_and_scale(image, image_size).numpy()
  except tf.errors.InvalidArgumentError as e:
    raise BadRequestError(f'not a decodable image ({e.message})', 'image_b64', index) from e


def prepare(
  row: dict[str, str], index: int, limits: Limits, encode: Any, image_size: int
) -> Instance:
  """One checked instance (`parse_instances` checked its structure): every check, cheapest
  first, then the image decoded."""
  ids = check_prompt(row['prompt'], index, limits, encode)
  data = decode_b64(row['image_b64'], index)
  check_image_header(data, index, limits)
  pixels = decode_pixels(data, index, image_size)
  return Instance(image=data, prompt=row['prompt'], prompt_ids=ids, pixels=pixels)
