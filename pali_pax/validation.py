"""Checks at the edges: what users pass to the Predictor, and experiment attributes.

Every check raises a `pali_pax.core.errors` class whose message names the argument
or attribute and the offending value, before anything is computed:

  Predictor inputs (InputValidationError)
    images           [B, H, W, 3], B >= 1, uint8 [0, 255] or finite float in [-1, 1]
    token ids        [B, T] integers (no floats, so no NaN and no 1.9 -> 1), B >= 1,
                     T >= 1, in [0, vocab_size)
    input_mask       same shape as input_ids, finite, values 0 / 1
    prompt ids       no all-padding row (an empty prompt); at most `max_input_len`
                     tokens up to the last non-padding one (longer prompts are an
                     error, never truncated silently)
    prompt strings   a list (not a bare string) of non-empty strings; a PaLI task
                     prompt ('Answer in xx: ...', 'Generate caption in xx:', ...)
                     must name a known language code (`tasks.prompts.LANGUAGES`)
    decoding         max_decode_steps and beam_size integers >= 1

  Experiments (ConfigError)
    ICI_MESH_SHAPE / DCN_MESH_SHAPE   3 positive integers each, whose product is
                                      the number of devices of the job
    VOCAB_PATH      a SentencePiece model that fits VOCAB_SIZE, and the vocabulary
                    of every task the experiment reads (None: the shipped one)
"""

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import seqio

from pali_pax.core import errors
from pali_pax.tasks import prompts as prompts_lib
from pali_pax.tasks import vocab as vocab_lib

# Default longest prompt (tokens) a Predictor accepts: PaLI's fine-tuning prompts are
# far shorter; mT5's relative attention has no hard limit, but memory grows with T^2.
MAX_INPUT_LEN = 512

# PaLI task prompts that name an output language (tasks/prompts.py templates).
_LANG_PROMPT = re.compile(
  r'^\s*(generate caption|answer|generate the alt_text|generate a question|detect all objects)'
  r' in ([^\s:]+)',
  re.IGNORECASE,
)


def _fail(message: str) -> errors.InputValidationError:
  return errors.InputValidationError(message)


def _as_array(value: Any, what: str) -> np.ndarray:
  try:
    return np.asarray(value)
  except (ValueError, TypeError) as e:  # ragged nested lists, unconvertible objects
    raise _fail(f'{what} is not a rectangular array: {e}') from e


def _check_batch(shape: tuple[int, ...], what: str) -> None:
  if shape[0] == 0:
    raise _fail(f'{what} has batch size 0 (shape {shape}); pass at least one example')


def check_images(images: Any, image_size: int | None = None) -> np.ndarray:
  """`images` as an array: uint8 [B, H, W, 3] or finite float [B, H, W, 3] in [-1, 1].

  Args:
    images: the images, any array-like.
    image_size: the model's square input side (None: any size).

  Returns:
    The array, with its dtype unchanged (uint8 or floating).
  """
  arr = _as_array(images, 'images')
  if arr.ndim != 4 or arr.shape[-1] != 3:
    raise _fail(f'images must be [B, H, W, 3] (RGB), got shape {arr.shape}')
  _check_batch(arr.shape, 'images')
  if image_size is not None and arr.shape[1:3] != (image_size, image_size):
    raise _fail(f'images must be {image_size}x{image_size} for this model, got {arr.shape[1:3]}')
  if arr.dtype == np.uint8:
    return arr
  if not np.issubdtype(arr.dtype, np.floating):
    raise _fail(f'images must be uint8 in [0, 255] or float in [-1, 1], got dtype {arr.dtype}')
  bad = ~np.isfinite(arr)
  if bad.any():
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise _fail(f'images hold {int(bad.sum())} NaN/inf value(s), the first at index {first}')
  if arr.min() < -1.0 - 1e-3 or arr.max() > 1.0 + 1e-3:
    raise _fail(
      f'float images must lie in [-1, 1] (or pass uint8 in [0, 255]); '
      f'got [{float(arr.min()):g}, {float(arr.max()):g}]'
    )
  return arr


def check_token_ids(ids: Any, what: str, vocab_size: int) -> np.ndarray:
  """Integer token ids [B, T] (B, T >= 1) in [0, vocab_size), as int32."""
  arr = _as_array(ids, what)
  if arr.ndim != 2:
    raise _fail(f'{what} must be [B, T], got shape {arr.shape}')
  _check_batch(arr.shape, what)
  if arr.shape[1] == 0:
    raise _fail(f'{what} has no tokens (shape {arr.shape})')
  if not np.issubdtype(arr.dtype, np.integer):
    raise _fail(f'{what} must be integer token ids, got dtype {arr.dtype}')
  if arr.min() < 0 or arr.max() >= vocab_size:
    raise _fail(f'{what} has ids outside [0, {vocab_size}): min {arr.min()}, max {arr.max()}')
  return arr.astype(np.int32)


def _zero_one(value: Any, what: str, shape: tuple[int, ...], other: str) -> np.ndarray:
  """`value` as a bool array of exactly `shape` (`other`'s shape), holding only 0 and 1."""
  arr = _as_array(value, what)
  if arr.shape != shape:
    raise _fail(f'{what} has shape {arr.shape}, but {other} has shape {shape}')
  if not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.number)):
    raise _fail(f'{what} must be 0/1 numbers or booleans, got dtype {arr.dtype}')
  if not np.isin(arr, (0, 1)).all():
    bad = arr[~np.isin(arr, (0, 1))]
    raise _fail(f'{what} must hold only 0 and 1, got e.g. {bad.flat[0]!r}')
  return arr.astype(bool)


def check_input_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
  """A 0/1 mask of exactly `shape` (the input_ids shape), as a bool array."""
  return _zero_one(mask, 'input_mask', shape, 'input_ids')


def check_has_image(has_image: Any, batch: int, images_given: bool) -> np.ndarray:
  """float32 [B] of 0 / 1; a 1 needs `images` (a row cannot have an image nobody gave)."""
  arr = _zero_one(has_image, 'has_image', (batch,), 'the [B] prompts')
  if arr.any() and not images_given:
    raise _fail('has_image marks rows with an image, but no images were given')
  return arr.astype(np.float32)


def check_prompt_ids(
  ids: Any, input_mask: Any, vocab_size: int, max_input_len: int = MAX_INPUT_LEN
) -> np.ndarray:
  """Encoder prompt ids [B, T] (masked to 0 where input_mask is 0): no empty or over-long row."""
  arr = check_token_ids(ids, 'input_ids', vocab_size)
  if input_mask is not None:
    arr = arr * check_input_mask(input_mask, arr.shape)
  real = arr != 0
  empty = np.flatnonzero(~real.any(axis=1))
  if empty.size:
    raise _fail(f'input_ids row {int(empty[0])} is empty (all padding): every prompt needs a token')
  lengths = arr.shape[1] - np.argmax(real[:, ::-1], axis=1)  # up to the last real token
  if lengths.max() > max_input_len:
    row = int(np.argmax(lengths))
    raise _fail(
      f'prompt {row} has {int(lengths[row])} tokens, more than max_input_len={max_input_len}; '
      'shorten it or raise Predictor.max_input_len (prompts are never truncated silently)'
    )
  return arr


def check_decoding(max_decode_steps: Any, beam_size: Any) -> tuple[int, int]:
  """(max_decode_steps, beam_size) as ints, each an integer >= 1."""
  out = []
  for name, value in (('max_decode_steps', max_decode_steps), ('beam_size', beam_size)):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
      raise _fail(f'{name} must be an integer >= 1, got {value!r}')
    if value < 1:
      raise _fail(f'{name} must be >= 1, got {value}')
    out.append(int(value))
  return out[0], out[1]


def check_texts(texts: Any, what: str, allow_empty: bool = False) -> list[str]:
  """A list/tuple of strings (not one bare string), at least one; empty ones unless allowed."""
  if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
    raise _fail(f'{what} must be a list of strings, got {type(texts).__name__} {texts!r:.60}')
  if not texts:
    raise _fail(f'{what} is empty: pass at least one')
  for i, text in enumerate(texts):
    if not isinstance(text, str):
      raise _fail(f'{what}[{i}] must be a string, got {type(text).__name__}')
    if not allow_empty and not text.strip():
      raise _fail(f'{what}[{i}] is empty')
  return list(texts)


def check_prompts(prompts: Any) -> list[str]:
  """Non-empty prompt strings; PaLI task prompts must name a known language code."""
  out = check_texts(prompts, 'prompts')
  for i, prompt in enumerate(out):
    if (m := _LANG_PROMPT.match(prompt)) and m.group(2).lower() not in prompts_lib.LANGUAGES:
      raise _fail(
        f'prompts[{i}] {prompt[:60]!r} names unknown language code {m.group(2)!r}; '
        f'known: {", ".join(sorted(prompts_lib.LANGUAGES))}'
      )
  return out


# ----------------------------------------------------------------- experiments


def check_mesh(ici: Any, dcn: Any, device_count: int) -> None:
  """ICI_MESH_SHAPE x DCN_MESH_SHAPE must be 3 positive ints each and cover every device."""
  total = 1
  for name, shape in (('ICI_MESH_SHAPE', ici), ('DCN_MESH_SHAPE', dcn)):
    if shape is None and name == 'DCN_MESH_SHAPE':
      continue
    dims = list(shape) if isinstance(shape, Iterable) else None
    if (
      dims is None
      or len(dims) != 3
      or not all(isinstance(d, int | np.integer) and not isinstance(d, bool) for d in dims)
      or min(dims) < 1
    ):
      raise errors.ConfigError(f'{name}={shape!r} must be 3 positive integers [replica, data, mdl]')
    total *= int(np.prod(dims))
  if total != device_count:
    raise errors.ConfigError(
      f'ICI_MESH_SHAPE={list(ici)} x DCN_MESH_SHAPE={list(dcn) if dcn else None} needs '
      f'{total} devices, but this job has {device_count}; set --fdl.ICI_MESH_SHAPE / '
      '--fdl.DCN_MESH_SHAPE so that their product is the device count'
    )


def check_vocab(vocab_path: str | None, vocab_size: int, task_names: Iterable[str]) -> None:
  """VOCAB_PATH loads, fits VOCAB_SIZE, and is the vocabulary of every named task/mixture."""
  try:
    vocab = vocab_lib.get_vocabulary(vocab_path)
  except errors.PaliPaxError:
    raise
  except Exception as e:  # a missing or unparsable model file
    raise errors.ConfigError(f'VOCAB_PATH={vocab_path!r} cannot be loaded: {e}') from e
  if vocab.vocab_size > vocab_size:
    raise errors.ConfigError(
      f'VOCAB_PATH={vocab_path!r} has {vocab.vocab_size} ids, more than VOCAB_SIZE={vocab_size} '
      '(the model embedding); raise VOCAB_SIZE'
    )
  for name in task_names:
    provider = seqio.get_mixture_or_task(name)
    tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    for task in tasks:
      for key, feature in task.output_features.items():
        # Non-text features (image, has_image) carry a PassThroughVocabulary.
        text = not isinstance(feature.vocabulary, seqio.PassThroughVocabulary)
        if text and feature.vocabulary != vocab:
          raise errors.ConfigError(
            f'VOCAB_PATH={vocab_path!r} is not the vocabulary of task {task.name!r} '
            f'(feature {key!r} uses {feature.vocabulary}); register the task with '
            'vocab_path=VOCAB_PATH, or set VOCAB_PATH to its vocabulary'
          )
