"""A Python predictor around PaliModel: features, logits, generation, scoring.

    p = Predictor.from_components(mt5='mt5-base/', vit='vit.npz', vocab='spm.model')
    p.generate(images, ['Generate caption in en:'])        # -> ['a red circle']
    p.score(images, ['Answer in en: colour?'] * 2, ['red', 'blue'])   # -> [B] log p

    p = Predictor.from_checkpoint('runs/tiny_pali')        # a paxml job dir

Images are float32 [B, H, W, 3] in [-1, 1] (uint8 [0, 255] is normalised).
Batches, token ids and the image range follow `pali_pax.core.batch`.
Inputs are checked by `pali_pax.validation` (InputValidationError naming the
argument): NaN/inf images, float ids, batch 0, empty prompts, unknown language
codes, beam_size < 1, mis-shaped input_mask; prompts longer than `max_input_len`
tokens (default 512) are an error, never truncated.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from praxis import base_layer, pax_fiddle, py_utils

from pali_pax import job_config, validation
from pali_pax.convert import components
from pali_pax.core import batch as batch_lib
from pali_pax.core import errors, xla_cpu
from pali_pax.core import params as params_lib
from pali_pax.serving import decode_fn, int8
from pali_pax.tasks import vocab as vocab_lib

NestedMap = py_utils.NestedMap


def normalise_images(images: Any, image_size: int | None = None) -> np.ndarray:
  """Validates and scales images to float32 [B, H, W, 3] in [-1, 1]."""
  images = validation.check_images(images, image_size)
  if images.dtype == np.uint8:
    return batch_lib.scale_pixels(images.astype(np.float32))
  return images.astype(np.float32)


class Predictor:
  """Jitted inference on a PaliModel with fixed weights.

  Attributes:
    max_input_len: longest prompt in tokens; longer ones are an InputValidationError.
  """

  max_input_len: int = validation.MAX_INPUT_LEN

  def __init__(
    self, model_cfg: pax_fiddle.Config, params: dict, vocab: Any = None, quantize: str | None = None
  ) -> None:
    """Use `from_components` or `from_checkpoint`; `params` is the `params` collection.

    quantize: None, or 'int8' to hold the linears' weights as per-channel int8
      (`pali_pax.serving.int8`), dequantized inside every jitted call.
    """
    self.model_cfg = model_cfg
    self.model = base_layer.instantiate(model_cfg)
    self.quantize = quantize
    if quantize is not None:
      params = int8.apply(jax.device_get(params), quantize)
    self.params = jax.device_put(params)  # once, not on every call
    self.vocab = vocab
    self.vocab_size = model_cfg.mt5_tpl.vocab_size
    self.image_size = model_cfg.vit_tpl.image_size if model_cfg.vit_tpl is not None else None
    self.experiment: Any = None  # the experiment instance, when built by from_checkpoint

  # ------------------------------------------------------------ builders
  @classmethod
  def from_components(
    cls, mt5: str, vit: str | None = None, vocab: str | None = None, seed: int = 0
  ) -> 'Predictor':
    """Builds a model from public checkpoints (see pali_pax.convert).

    Args:
      mt5: HF mT5 directory (config.json + weights) or T5X checkpoint dir.
      vit: big_vision .npz or HF SigLIP / ViT directory, or None (text only).
      vocab: SentencePiece model path for `generate` / `score`.
      seed: seed of the parts no checkpoint provides (the projection).
    """
    cfg, params = components.load_components(mt5=mt5, vit=vit, seed=seed)
    return cls(cfg, params, _vocab(vocab))

  @classmethod
  def from_checkpoint(
    cls,
    job_dir: str,
    step: int | None = None,
    experiment: str | None = None,
    overrides: dict[str, Any] | None = None,
    quantize: str | None = None,
  ) -> 'Predictor':
    """Loads a Pax checkpoint of a paxml job dir into the model it was trained as.

    Args:
      job_dir: the `--job_log_dir` of a run (or its `checkpoints/` folder).
      step: checkpoint step; None = the latest.
      experiment: registered experiment name, with `overrides`; by default both
        are read from the job dir's `pali_pax.json` (written when `pali-pax
        train`, `demo` or `convert` start the job), so the model is rebuilt with
        the same `--fdl.*` overrides and vocabulary.
      quantize: None or 'int8' (see `__init__`).

    Raises:
      CheckpointMismatchError: a variable is missing, unexpected or mis-shaped (named).
    """
    exp, params = job_config.load_model_params(job_dir, experiment, step, overrides)
    cfg = params_lib.unsharded(exp.model_config())
    predictor = cls(cfg, params, vocab_lib.get_vocabulary(exp.VOCAB_PATH), quantize)
    predictor.experiment = exp
    return predictor

  # ------------------------------------------------------------ helpers
  def _check_ids(self, ids: Any, what: str) -> np.ndarray:
    return validation.check_token_ids(ids, what, self.vocab_size)

  def _batch(
    self,
    input_ids: Any,
    input_mask: Any,
    images: Any,
    dec_ids: Any = None,
    targets: Any = None,
    has_image: Any = None,
  ) -> NestedMap:
    """The model batch (`batch.make_batch`): decoder ids for teacher forcing, targets to score."""
    ids = validation.check_prompt_ids(input_ids, input_mask, self.vocab_size, self.max_input_len)
    if images is not None:
      self._require_vit()
      images = normalise_images(images, self.image_size)
    if has_image is not None:
      has_image = validation.check_has_image(has_image, len(ids), images is not None)
    return batch_lib.make_batch(
      ids,
      None if targets is None else self._check_ids(targets, 'target ids'),
      decoder_input_tokens=None if dec_ids is None else self._check_ids(dec_ids, 'decoder ids'),
      images=images,
      has_image=has_image,
      image_size=self.image_size or 1,
    )

  @functools.cached_property
  def _apply(self) -> Any:
    def run(mdl_params: dict, batch: NestedMap, method: str, **kw: Any) -> Any:
      ctx = base_layer.JaxContext.HParams(do_eval=True)
      with base_layer.JaxContext.new_context(hparams=ctx):
        fn = getattr(self.model, method)
        return self.model.apply(
          {'params': int8.dequantize_params(mdl_params)}, batch, method=fn, **kw
        )

    return run

  @functools.cached_property
  def _jit_features(self) -> Any:
    return xla_cpu.inference_jit(lambda p, im: self._apply(p, im, 'image_features'))

  @functools.cached_property
  def _jit_logits(self) -> Any:
    return xla_cpu.inference_jit(lambda p, b: self._apply(p, b, 'compute_predictions').logits)

  @functools.cached_property
  def _jit_score(self) -> Any:
    return xla_cpu.inference_jit(lambda p, b: self._apply(p, b, 'score'))

  @functools.lru_cache(maxsize=8)  # noqa: B019  (one compiled program per decode shape)
  def _jit_decode(self, steps: int, beam_size: int) -> Any:
    hparams = decode_fn.decoder_params(steps, beam_size)

    def run(p: dict, b: NestedMap) -> Any:
      return decode_fn.run_decode(self.model, p, b, hparams).output_ids[:, 0, 1:]

    return xla_cpu.inference_jit(run)

  # ------------------------------------------------------------ public API
  def image_features(self, images: Any) -> np.ndarray:
    """ViT output before the projection: float32 [B, N, vit_width]."""
    self._require_vit()
    image = normalise_images(images, self.image_size)
    return np.asarray(self._jit_features(self.params, jnp.asarray(image)), np.float32)

  def text_logits(
    self, input_ids: Any, decoder_input_ids: Any, input_mask: Any = None, images: Any = None
  ) -> np.ndarray:
    """Teacher-forced logits float32 [B, T, vocab]; decoder ids start with 0."""
    batch = self._batch(input_ids, input_mask, images, decoder_input_ids)
    return np.asarray(self._jit_logits(self.params, batch), np.float32)

  def generate_ids(
    self,
    input_ids: Any,
    input_mask: Any = None,
    images: Any = None,
    max_decode_steps: int = 32,
    beam_size: int = 1,
    has_image: Any = None,
  ) -> list[np.ndarray]:
    """Greedy (beam_size 1) or beam search; int32 ids per example ending at eos 1.

    has_image: [B] of 0 / 1 for a batch mixing image and text-only rows (the
    images of text-only rows are ignored, as in training); None = every row has
    an image when `images` is given, none otherwise.
    """
    steps, beams = validation.check_decoding(max_decode_steps, beam_size)
    batch = self._batch(input_ids, input_mask, images, has_image=has_image)
    out = np.asarray(self._jit_decode(steps, beams)(self.params, batch))
    return [_until_eos(row) for row in out]

  def _require_vit(self) -> None:
    if self.image_size is None:
      raise errors.InputValidationError('this Predictor has no ViT (text only): pass images=None')

  def _require_vocab(self) -> Any:
    if self.vocab is None:
      raise errors.InputValidationError(
        'this Predictor has no vocabulary: pass vocab=PATH to from_components'
      )
    return self.vocab

  def _encode(self, texts: list[str]) -> np.ndarray:
    """Token ids [B, T] of `texts`, each ending with eos."""
    vocab = self._require_vocab()
    return batch_lib.pad_ids([[*vocab.encode(t), batch_lib.EOS_ID] for t in texts])

  def generate(self, images: Any, prompts: list[str], **kwargs: Any) -> list[str]:
    """Decoded strings for each (image, prompt); images may be None (text only)."""
    vocab = self._require_vocab()
    prompts = validation.check_prompts(prompts)
    ids = self.generate_ids(self._encode(prompts), images=images, **kwargs)
    return [vocab.decode([int(t) for t in row if t != batch_lib.EOS_ID]) for row in ids]

  def score(self, images: Any, prompts: list[str], targets: list[str]) -> np.ndarray:
    """Log-likelihood float32 [B] of each target given (image, prompt)."""
    prompts = validation.check_prompts(prompts)
    targets = validation.check_texts(targets, 'targets', allow_empty=True)
    if len(prompts) != len(targets):
      raise errors.InputValidationError(f'{len(prompts)} prompts but {len(targets)} targets')
    batch = self._batch(self._encode(prompts), None, images, targets=self._encode(targets))
    return np.asarray(self._jit_score(self.params, batch), np.float32)


def _until_eos(row: np.ndarray) -> np.ndarray:
  hits = np.nonzero(row == batch_lib.EOS_ID)[0]
  return row[: hits[0] + 1] if hits.size else row


def _vocab(path: str | None) -> Any:
  if path is None:
    return None
  return vocab_lib.get_vocabulary(path)
