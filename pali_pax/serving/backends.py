"""What the server runs a padded batch on: a job dir's Predictor, or an exported SavedModel.

    backend = load_backend('runs/tiny')          # a job dir (JOB/pali_pax.json, checkpoints/)
    backend = load_backend('export/pali')        # a SavedModel dir (saved_model.pb)
    backend.run_batch(instances)                 # -> [Prediction(text, score)] per instance

Both take `request_checks.Instance`s (prompt ids and decoded pixels already checked) and
answer greedily: `text` is the decoded string, `score` the sum of the log-probabilities
of the chosen tokens (eos included). Prompts are padded to MAX_INPUT_LEN tokens, so the
program's shapes depend on the batch bucket only: one compile per bucket.
"""

import dataclasses
import functools
import os
from typing import Any

import jax
import numpy as np

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors
from pali_pax.inference import Predictor, normalise_images
from pali_pax.serving import decode_fn, request_checks
from pali_pax.serving import servable as servable_lib

# The prompt of the warm-up batches (any valid prompt: only the shapes matter).
WARM_UP_PROMPT = 'Generate caption in en:'


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One answer: the greedy text and the sum of its tokens' log-probabilities."""

  text: str
  score: float


def is_saved_model(path: str) -> bool:
  """Whether `path` holds a TensorFlow SavedModel (saved_model.pb or .pbtxt)."""
  return any(os.path.exists(os.path.join(path, f)) for f in ('saved_model.pb', 'saved_model.pbtxt'))


def load_backend(
  path: str, servable: str | None = None, **settings: Any
) -> 'PredictorBackend | SavedModelBackend':
  """The backend for a job dir or a SavedModel dir, chosen by what `path` holds.

  Args:
    path: a paxml job dir (or its checkpoints/ folder) or a SavedModel dir.
    servable: a registered servable name whose settings to use; None = the servable
      of the job's experiment (for a SavedModel: the settings it was exported with).
    **settings: UPPERCASE servable overrides (e.g. BATCH_SIZES=(1,), BATCH_WAIT_MS=2.0).

  Raises:
    MissingFileError: `path` does not exist or holds neither.
  """
  if not os.path.isdir(path):
    raise errors.MissingFileError(f'{path} does not exist (expected a job dir or a SavedModel)')
  if is_saved_model(path):
    return SavedModelBackend(path, servable, **settings)
  resolved = servable_lib.servable_for(servable or path, **settings)
  predictor = Predictor.from_checkpoint(path)
  return PredictorBackend(predictor, resolved)


class PredictorBackend:
  """Greedy decoding of a Predictor (a job dir's model) with per-token log-probabilities."""

  kind = 'job'

  def __init__(self, predictor: Predictor, servable: Any) -> None:
    if int(servable.BEAM_SIZE) != 1:
      raise errors.ConfigError(
        f'{servable.name}.BEAM_SIZE={servable.BEAM_SIZE}: the server decodes greedily (1)'
      )
    if predictor.vocab is None or predictor.image_size is None:
      raise errors.ConfigError('the server needs a model with a ViT and a vocabulary')
    self.predictor = predictor
    self.servable = servable
    self.batch_sizes = tuple(servable.BATCH_SIZES)
    self.batch_wait_ms = float(servable.BATCH_WAIT_MS)
    self.limits = request_checks.Limits.from_servable(servable)
    self.image_size = int(predictor.image_size)
    self.max_decode_steps = int(servable.MAX_DECODE_STEPS)

  def encode(self, prompt: str) -> list[int]:
    """The prompt's token ids, without eos."""
    return list(self.predictor.vocab.encode(prompt))

  def metadata(self) -> dict[str, Any]:
    return {'backend': self.kind, 'servable': self.servable.name, **self.servable.settings()}

  @functools.cached_property
  def _decode(self) -> Any:
    return jax.jit(decode_fn.greedy_fn(self.predictor.model, self.max_decode_steps))

  def run_batch(self, instances: list[request_checks.Instance]) -> list[Prediction]:
    """Greedy answers of a bucket-sized batch (rows are independent of each other)."""
    ids = batch_lib.pad_ids(
      [[*inst.prompt_ids, batch_lib.EOS_ID] for inst in instances], self.limits.max_input_len
    )
    images = normalise_images(np.stack([inst.pixels for inst in instances]), self.image_size)
    has_image = np.ones(len(instances), np.float32)
    out_ids, scores = self._decode(self.predictor.params, images, has_image, ids)
    out_ids, scores = np.asarray(out_ids), np.asarray(scores, np.float64)
    vocab = self.predictor.vocab
    answers = []
    for row, score in zip(out_ids, scores, strict=True):
      tokens = [int(t) for t in row]
      if batch_lib.EOS_ID in tokens:
        tokens = tokens[: tokens.index(batch_lib.EOS_ID)]
      answers.append(Prediction(vocab.decode(tokens), float(score)))
    return answers

  def warm_up(self, bucket: int) -> None:
    """Compiles (and runs once) the program of `bucket`."""
    self.run_batch([warm_up_instance(self.encode, self.image_size)] * bucket)


def warm_up_instance(encode: Any, image_size: int) -> request_checks.Instance:
  """A valid instance (grey image, a caption prompt) for warming a bucket's program."""
  return request_checks.Instance(
    image=b'',
    prompt=WARM_UP_PROMPT,
    prompt_ids=list(encode(WARM_UP_PROMPT)),
    pixels=np.zeros((image_size, image_size, 3), np.float32),
  )


class SavedModelBackend:
  """An exported SavedModel (`pali-pax export --saved_model`): strings in, strings out."""

  kind = 'saved_model'

  def __init__(self, path: str, servable: str | None = None, **settings: Any) -> None:
    raise errors.ConfigError(f'{path}: SavedModel serving is not available yet ({servable})')
