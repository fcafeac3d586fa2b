"""A TensorFlow SavedModel of a PaLI job: strings in, strings out, for TF Serving / Vertex AI.

    export(job_dir, out_dir)   # trained by paxml.main, or written by `pali-pax convert`
    `pali-pax export JOB --saved_model DIR [--quantize int8] [--max_decode_steps N]`

The serving signature (`serving_default`):

| | name | dtype | shape |
|---|---|---|---|
| in | image | tf.string | [B] encoded JPEG / PNG / GIF / BMP bytes ('' = text only) |
| in | prompt | tf.string | [B] |
| out | text | tf.string | [B] greedy output, up to eos |
| out | score | float32 | [B] sum of the chosen tokens' log-probabilities (eos included) |

Built the way T5X's export_lib builds its module (orbax-export 0.0.8 needs
orbax-checkpoint >= 0.9, the lock has 0.5.9 for paxml 1.4): a `tf.Module` holds the
weights as non-trainable `tf.Variable`s (int8 ones with `quantize='int8'`), the image
decode / resize (`pali_pax.tasks.image_ops`) and SentencePiece ops run in the graph
(`tf_io`), and the model with its KV-cached greedy loop (`decode_fn.greedy_fn`) is ONE
jax2tf native-serialized function (an `XlaCallModule` op) whose batch dimension is
polymorphic; prompts are padded to the servable's MAX_INPUT_LEN. A loading process needs
tensorflow and `import tensorflow_text` (for the SentencePiece op), nothing of JAX.

Serialization version: jax 0.8.3 writes XlaCallModule calling-convention version
`jax.config.jax_export_calling_convention_version` (10); a TensorFlow (or TF Serving)
runs the module only if `call_module_maximum_supported_version()` (from
`tensorflow.compiler.tf2xla.python.xla`) is at least that (TF 2.21: 10). `export`
refuses to write a module the installed TF cannot run, and records the version and the
platforms in `DIR/assets.extra/pali_pax_export.json`, which a server can check the same way.

Platforms: lowered for each of `platforms` (default cpu, cuda, tpu: jax lowers all three
on any host; the module then runs on whichever the loading TF runs on). Beam search is
not exported (`decode_fn.greedy_fn` refuses beam_size > 1).
"""

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from jax.experimental import jax2tf
from tensorflow.compiler.tf2xla.python import xla as tf_xla

from pali_pax import inference
from pali_pax.core import errors
from pali_pax.serving import decode_fn, int8, servable, tf_io
from pali_pax.tasks import image_ops

DEFAULT_PLATFORMS = ('cpu', 'cuda', 'tpu')
METADATA = os.path.join('assets.extra', 'pali_pax_export.json')


def serialization_version() -> int:
  """The XlaCallModule calling-convention version jax writes."""
  return int(jax.config.jax_export_calling_convention_version)


def check_serialization_version(version: int | None = None) -> int:
  """ConfigError unless the installed TensorFlow runs XlaCallModule `version` (default: jax's)."""
  version = serialization_version() if version is None else int(version)
  supported = int(tf_xla.call_module_maximum_supported_version())
  if version > supported:
    raise errors.ConfigError(
      f'jax {jax.__version__} serializes XlaCallModule version {version}, but TensorFlow '
      f'{tf.__version__} runs versions <= {supported}: upgrade TF (and TF Serving) or set '
      f'jax_export_calling_convention_version={supported}'
    )
  return version


@dataclasses.dataclass
class ExportInfo:
  """What `export` wrote: directory, settings, platforms, versions (also the metadata file)."""

  saved_model: str
  job_dir: str
  step: int | None
  settings: dict[str, Any]
  platforms: list[str]
  xla_call_module_version: int
  weight_bytes: int
  float32_weight_bytes: int
  versions: dict[str, str]


class PaliServingModule(tf.Module):
  """The exported module: weights as variables, the tokenizer, the serving function."""

  def __init__(
    self,
    params: Any,
    fn: Any,
    sp_model: bytes,
    base_vocab_size: int,
    unk_id: int,
    image_size: int,
    max_input_len: int,
  ) -> None:
    super().__init__(name='pali')
    leaves, self._treedef = jax.tree_util.tree_flatten(params)
    # Flat list: tf.Module tracks it; the pytree structure is rebuilt at trace time.
    self.weights = [tf.Variable(np.asarray(x), trainable=False) for x in leaves]
    self.tokenizer = tf_text.SentencepieceTokenizer(model=sp_model)
    self._fn = fn
    self._base_vocab_size = base_vocab_size
    self._unk_id = unk_id
    self._image_size = image_size
    self._max_input_len = max_input_len

  @tf.function(
    autograph=False,  # plain TF ops and one jax2tf call: nothing for autograph to convert
    input_signature=[
      tf.TensorSpec([None], tf.string, name='image'),
      tf.TensorSpec([None], tf.string, name='prompt'),
    ],
  )
  def serve(self, image: tf.Tensor, prompt: tf.Tensor) -> dict[str, tf.Tensor]:
    """image tf.string [B], prompt tf.string [B] -> {'text': tf.string [B], 'score': f32 [B]}."""
    tf.debugging.assert_equal(
      tf.shape(image), tf.shape(prompt), message='image and prompt: different batch sizes'
    )
    pixels, has_image = tf_io.decode_images(image, self._image_size, image_ops.MAX_IMAGE_PIXELS)
    ids = tf_io.tokenize(self.tokenizer, prompt, self._max_input_len)
    params = jax.tree_util.tree_unflatten(self._treedef, list(self.weights))
    out_ids, score = self._fn(params, pixels, has_image, ids)
    text = tf_io.detokenize(self.tokenizer, out_ids, self._base_vocab_size, self._unk_id)
    return {'text': text, 'score': score}


def export(
  job_dir: str,
  out_dir: str,
  *,
  step: int | None = None,
  max_decode_steps: int | None = None,
  beam_size: int = 1,
  quantize: str | None = None,
  max_input_len: int | None = None,
  platforms: Sequence[str] = DEFAULT_PLATFORMS,
) -> ExportInfo:
  """Writes the SavedModel of checkpoint `step` (None: newest intact) of `job_dir`.

  Args:
    job_dir: a paxml job dir with JOB/pali_pax.json (trained, or `pali-pax convert`).
    out_dir: the SavedModel directory to write (must not exist or be empty).
    max_decode_steps / max_input_len: default the job's servable (`servable_for`).
    beam_size: only 1 (greedy); larger is a ConfigError.
    quantize: None or 'int8' (`pali_pax.serving.int8`: int8 variables, dequantized
      inside the exported function).
    platforms: jax2tf native_serialization_platforms.
  """
  version = check_serialization_version()
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    raise FileExistsError(f'{out_dir} is not empty; choose a new --saved_model directory')
  settings = {'BEAM_SIZE': beam_size, 'QUANTIZE': quantize}
  if max_decode_steps is not None:
    settings['MAX_DECODE_STEPS'] = max_decode_steps
  if max_input_len is not None:
    settings['MAX_INPUT_LEN'] = max_input_len
  serv = servable.servable_for(job_dir, **settings)
  decode_fn.check_settings(serv.MAX_DECODE_STEPS, serv.BEAM_SIZE)  # before the slow load
  predictor = inference.Predictor.from_checkpoint(job_dir, step, quantize=serv.QUANTIZE)
  fn = decode_fn.greedy_fn(predictor.model, serv.MAX_DECODE_STEPS)
  served = jax.device_get(predictor.params)  # the Predictor's weights (int8 ones quantized)
  vocab = predictor.vocab
  tf_fn = jax2tf.convert(
    fn,
    polymorphic_shapes=[None, '(b, ...)', '(b,)', '(b, ...)'],
    native_serialization_platforms=tuple(platforms),
    with_gradient=False,
  )
  module = PaliServingModule(
    served,
    tf_fn,
    vocab.sp_model,
    int(vocab._base_vocab_size),  # noqa: SLF001  (seqio's decode_tf rule, no public name)
    int(vocab.unk_id),
    serv.image_size,
    serv.MAX_INPUT_LEN,
  )
  signature = module.serve.get_concrete_function()
  tf.saved_model.save(module, out_dir, signatures={'serving_default': signature})
  info = ExportInfo(
    saved_model=os.path.abspath(out_dir),
    job_dir=os.path.abspath(job_dir),
    step=step,
    settings=serv.settings(),
    platforms=list(platforms),
    xla_call_module_version=version,
    weight_bytes=int8.weight_bytes(served),
    float32_weight_bytes=int8.float32_bytes(served),
    versions={'jax': jax.__version__, 'tensorflow': tf.__version__},
  )
  os.makedirs(os.path.join(out_dir, 'assets.extra'), exist_ok=True)
  with open(os.path.join(out_dir, METADATA), 'w') as f:
    json.dump(dataclasses.asdict(info), f, indent=1)
  return info
