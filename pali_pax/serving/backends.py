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
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors, xla_cpu
from pali_pax.inference import Predictor, normalise_images
from pali_pax.serving import decode_fn, request_checks, saved_model
from pali_pax.serving import servable as servable_lib
from pali_pax.tasks import vocab as vocab_lib

# The prompt of the warm-up batches (any valid prompt: only the shapes matter).
WARM_UP_PROMPT = 'Generate caption in en:'


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One answer: the greedy text, the sum of its tokens' log-probabilities and (when the
  backend knows it) how many tokens were generated, eos included."""

  text: str
  score: float
  tokens: int | None = None

  def to_json(self) -> dict[str, Any]:
    out: dict[str, Any] = {'text': self.text, 'score': self.score}
    if self.tokens is not None:
      out['tokens'] = self.tokens
    return out


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
  predictor = Predictor.from_checkpoint(path, quantize=resolved.QUANTIZE)
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
    return xla_cpu.inference_jit(decode_fn.greedy_fn(self.predictor.model, self.max_decode_steps))

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
      generated = len(tokens)
      if batch_lib.EOS_ID in tokens:
        generated = tokens.index(batch_lib.EOS_ID) + 1
        tokens = tokens[: generated - 1]
      answers.append(Prediction(vocab.decode(tokens), float(score), generated))
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
  """An exported SavedModel (`pali-pax export --saved_model`): strings in, strings out.

  The settings baked into the export (MAX_INPUT_LEN, MAX_DECODE_STEPS, IMAGE_SIZE,
  QUANTIZE) come from DIR/assets.extra/pali_pax_export.json; BATCH_SIZES and
  BATCH_WAIT_MS may be overridden. The server tokenizes prompts only to refuse long
  ones by name before they reach the graph (which would fail the whole batch): with
  the vocabulary of the exported job (its dir if present, else its experiment's).
  """

  kind = 'saved_model'

  def __init__(self, path: str, servable: str | None = None, **settings: Any) -> None:
    meta_path = os.path.join(path, saved_model.METADATA)
    if not os.path.exists(meta_path):
      raise errors.MissingFileError(f'{meta_path} is missing: not a `pali-pax export` SavedModel')
    with errors.parsing(meta_path, 'export metadata JSON'):
      with open(meta_path) as f:
        self.export_info = json.load(f)
      exported = dict(self.export_info['settings'])
    saved_model.check_serialization_version(self.export_info['xla_call_module_version'])
    baked = sorted(set(settings) - {'BATCH_SIZES', 'BATCH_WAIT_MS'})
    if baked:
      raise errors.ConfigError(
        f'{baked} are fixed by the export of {path}; re-export to change them'
      )
    source = self.export_info.get('job_dir')
    if not (source and os.path.isdir(source)):
      source = exported['EXPERIMENT']
    named = servable_lib.servable_for(servable or source, **settings)
    self.settings = dict(exported, BATCH_SIZES=list(named.BATCH_SIZES))
    self.settings['BATCH_WAIT_MS'] = named.BATCH_WAIT_MS
    self.batch_sizes = tuple(named.BATCH_SIZES)
    self.batch_wait_ms = float(named.BATCH_WAIT_MS)
    self.limits = request_checks.Limits.from_servable(named)
    self.limits = dataclasses.replace(self.limits, max_input_len=int(exported['MAX_INPUT_LEN']))
    self.image_size = int(exported['IMAGE_SIZE'])
    self.vocab = vocab_lib.get_vocabulary(named.vocab_path)
    self._serve = tf.saved_model.load(path).signatures['serving_default']

  def encode(self, prompt: str) -> list[int]:
    """The prompt's token ids, without eos."""
    return list(self.vocab.encode(prompt))

  def metadata(self) -> dict[str, Any]:
    info = {k: self.export_info.get(k) for k in ('platforms', 'xla_call_module_version', 'step')}
    return {'backend': self.kind, **self.settings, **info}

  def run_batch(self, instances: list[request_checks.Instance]) -> list[Prediction]:
    """The signature's answers for a bucket-sized batch (images still encoded)."""
    out = self._serve(
      image=tf.constant([inst.image for inst in instances], tf.string),
      prompt=tf.constant([inst.prompt for inst in instances], tf.string),
    )
    texts, scores = out['text'].numpy(), out['score'].numpy()
    return [Prediction(t.decode('utf-8'), float(s)) for t, s in zip(texts, scores, strict=True)]

  def warm_up(self, bucket: int) -> None:
    """Runs the signature once at `bucket` rows (TF compiles the module per batch shape)."""
    self.run_batch([warm_up_instance(self.encode, self.image_size)] * bucket)
