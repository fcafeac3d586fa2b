"""The model batch: field names, dtypes, shapes, special token ids and image range.

The one definition every producer and consumer of a batch uses: the seqio
feature converter (tasks/feature_converter.py, the same rules in tf.data), the
`Predictor`, the abstract-shape helpers (parameter counts, checkpoint metadata),
the model and the tokenizer checks. docs/CONTRACTS.md shows this table.

| key | dtype | shape | meaning |
|---|---|---|---|
| image | float32 | [B, H, W, 3] | in [-1, 1]; zeros when the example has no image |
| has_image | float32 | [B] | 1.0 image present, 0.0 text-only |
| encoder_input_tokens | int32 | [B, Ti] | prompt ids, PAD_ID = padding |
| decoder_input_tokens | int32 | [B, To] | targets shifted right, starting with DECODER_START_ID |
| decoder_target_tokens | int32 | [B, To] | target ids ending with EOS_ID, PAD_ID = padding |
| decoder_loss_weights | float32 | [B, To] | 1.0 on real target tokens |

Encoder paddings are derived in the model (`tokens == PAD_ID`), as in T5;
decoder paddings from the loss weights (the start id equals the pad id).
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from praxis import py_utils

from pali_pax.core import errors

NestedMap = py_utils.NestedMap

# mT5's token ids (SentencePiece pad / eos / unk); T5 decoding starts from the pad id.
PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
DECODER_START_ID = 0
# mT5's embedding size: 250,000 SentencePiece pieces + 100 sentinel ids.
MT5_VOCAB_SIZE = 250_112


@dataclasses.dataclass(frozen=True)
class Field:
  """One batch entry: numpy dtype and dimension names (B = batch)."""

  dtype: type
  dims: tuple[str, ...]


FIELDS: dict[str, Field] = {
  'image': Field(np.float32, ('B', 'H', 'W', '3')),
  'has_image': Field(np.float32, ('B',)),
  'encoder_input_tokens': Field(np.int32, ('B', 'Ti')),
  'decoder_input_tokens': Field(np.int32, ('B', 'To')),
  'decoder_target_tokens': Field(np.int32, ('B', 'To')),
  'decoder_loss_weights': Field(np.float32, ('B', 'To')),
}

IdRows = np.ndarray | Sequence[Sequence[int]]


def scale_pixels(pixels: Any) -> Any:
  """Pixel values in [0, 255] -> the model's image range [-1, 1] (numpy or tf, float)."""
  return pixels / 127.5 - 1.0


def pad_ids(rows: IdRows, length: int | None = None, what: str = 'ids') -> np.ndarray:
  """Token id rows -> int32 [B, length], PAD_ID after each row, rows cut to `length`.

  Args:
    rows: [B, T] integer array or a sequence of id sequences of any lengths.
    length: output width; None = the longest row (at least 1). Longer rows keep
      their first `length` ids (as seqio's trimming does: eos may be cut).
    what: the name used in error messages.
  """
  rows = [np.asarray(r) for r in rows]
  for i, r in enumerate(rows):
    if r.ndim != 1 or (r.size and not np.issubdtype(r.dtype, np.integer)):
      raise errors.InputValidationError(
        f'{what}: row {i} must be 1-D integer ids, got {r.dtype} {r.shape}'
      )
  width = max([1, *(len(r) for r in rows)]) if length is None else int(length)
  out = np.full((len(rows), width), PAD_ID, np.int32)
  for i, r in enumerate(rows):
    out[i, : min(len(r), width)] = r[:width]
  return out


def make_batch(
  encoder_input_tokens: IdRows,
  decoder_target_tokens: IdRows | None = None,
  *,
  decoder_input_tokens: IdRows | None = None,
  images: Any = None,
  has_image: Any = None,
  image_size: int = 1,
  input_len: int | None = None,
  target_len: int | None = None,
) -> NestedMap:
  """A model batch (module table) from token ids and images, as numpy arrays.

  The decoder side comes from one of:
  * `decoder_target_tokens` (training / scoring, as the feature converter):
    inputs are the targets shifted right after DECODER_START_ID, loss weights
    1.0 where the target is not PAD_ID;
  * `decoder_input_tokens` (teacher forcing with given decoder ids): every
    position is real (weight 1.0), targets are the next input id;
  * neither (decoding): one start token per example, weight 0.

  Args:
    encoder_input_tokens: prompt ids [B, Ti] or B rows of any lengths.
    decoder_target_tokens: target ids [B, To] or B rows (eos included).
    decoder_input_tokens: decoder ids [B, To] or B rows, first DECODER_START_ID.
    images: float32 [B, H, W, 3] already in [-1, 1] (see `scale_pixels`), or
      None for a text-only batch (zero images of side `image_size`).
    has_image: float32 [B]; default 1.0 with `images`, 0.0 without.
    image_size: side of the zero images when `images` is None.
    input_len: Ti (pads / cuts the prompts); None = the longest prompt.
    target_len: To (pads / cuts the decoder ids); None = the longest row.
  """
  enc = pad_ids(encoder_input_tokens, input_len, 'encoder_input_tokens')
  b = enc.shape[0]
  if decoder_input_tokens is not None:
    if decoder_target_tokens is not None:
      raise errors.InputValidationError(
        'give decoder_target_tokens or decoder_input_tokens, not both'
      )
    dec_in = pad_ids(decoder_input_tokens, target_len, 'decoder_input_tokens')
    targets = np.concatenate([dec_in[:, 1:], np.full((len(dec_in), 1), PAD_ID, np.int32)], 1)
    weights = np.ones(dec_in.shape, np.float32)
  else:
    rows = np.zeros((b, 0), np.int32) if decoder_target_tokens is None else decoder_target_tokens
    targets = pad_ids(rows, target_len, 'decoder_target_tokens')
    start = np.full((len(targets), 1), DECODER_START_ID, np.int32)
    dec_in = np.concatenate([start, targets[:, :-1]], 1)
    weights = (targets != PAD_ID).astype(np.float32)
  if images is None:
    images = np.zeros((b, image_size, image_size, 3), np.float32)
    has_image = np.zeros((b,), np.float32) if has_image is None else has_image
  images = np.asarray(images, np.float32)
  if images.ndim and images.shape[0] != b:
    raise errors.InputValidationError(f'{images.shape[0]} images for {b} prompts')
  has_image = np.ones((b,), np.float32) if has_image is None else has_image
  out = NestedMap(
    image=images,
    has_image=np.asarray(has_image, np.float32),
    encoder_input_tokens=enc,
    decoder_input_tokens=dec_in,
    decoder_target_tokens=targets,
    decoder_loss_weights=weights,
  )
  for name, value in out.items():
    dims = FIELDS[name].dims
    fixed = {i: int(d) for i, d in enumerate(dims) if d.isdigit()}  # e.g. RGB's 3
    fixed[0] = b
    if value.ndim != len(dims) or any(value.shape[i] != n for i, n in fixed.items()):
      raise errors.InputValidationError(
        f'{name} must be [{", ".join(dims)}] with B = {b}, got shape {value.shape}'
      )
  return out


def dummy_batch(
  image_size: int, batch: int = 1, input_len: int = 8, target_len: int = 8
) -> NestedMap:
  """A batch of the given sizes (ids 1, zero images), for tracing and init."""
  return make_batch(
    np.ones((batch, input_len), np.int32),
    np.ones((batch, target_len), np.int32),
    images=np.zeros((batch, image_size, image_size, 3), np.float32),
  )


def batch_specs(
  image_size: int, batch: int = 1, input_len: int = 8, target_len: int = 8
) -> NestedMap:
  """`jax.ShapeDtypeStruct`s of a batch of the given sizes (nothing allocated)."""
  sizes = {'B': batch, 'H': image_size, 'W': image_size, '3': 3, 'Ti': input_len, 'To': target_len}
  return NestedMap(
    {
      name: jax.ShapeDtypeStruct(tuple(sizes[d] for d in f.dims), f.dtype)
      for name, f in FIELDS.items()
    }
  )
