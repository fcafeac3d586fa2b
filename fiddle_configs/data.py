"""Data sources of the experiments, as mixins (paxml's way): what a run trains, evaluates and decodes.

An experiment is a data mixin + a recipe + a size, e.g.

  class PaliFinetuneCocoCaptions(CocoCaptionsData, FinetuneRecipe): ...
  class PaliTinySynthetic(SyntheticData, suffix='_32'): MODEL = 'tiny'

Each mixin owns its seqio names and its `register_tasks`, which reads the
experiment's IMAGE_SIZE and VOCAB_PATH, so every experiment registers its tasks
with its own vocabulary.
"""

from typing import Any

import jax
from praxis import base_input, pax_fiddle

from pali_pax.core import errors
from pali_pax.fiddle_configs.experiment_base import PaliExperiment
from pali_pax.tasks import finetune_tasks, image_ops, synthetic_tasks

# The families the CPU demo reports, each decoded by its own program.
DECODED_FAMILIES = ('caption', 'vqa', 'ocr', 'detection')


class SyntheticData(PaliExperiment):
  """The built-in synthetic multilingual tasks and their mixture, registered under a suffix.

  `class X(SyntheticData, suffix='_32')` trains on that mixture, evaluates on it and
  decodes DECODED_FAMILIES; `evaluate=False`: training only. A class without
  `suffix` inherits its base's. TASK_RATES: mixing rate per task (None:
  `synthetic_tasks.DEFAULT_RATES`). VALIDATION_SIZE: examples per task in 'validation'.
  OCR_STYLE: how the OCR task draws its words ('plain' or 'varied' colours and sizes,
  `synthetic_scene.OCR_STYLES`). VIT_PRETRAIN_STEPS: None, or the steps of the ViT
  pretraining a job starts from (`pali-pax pretrain-vit`, which `pali-pax train`
  then requires of a new job that keeps the ViT frozen).
  """

  TASK_RATES: dict[str, float] | None = None
  VALIDATION_SIZE = synthetic_tasks.VALIDATION_EXAMPLES
  OCR_STYLE = 'plain'
  VIT_PRETRAIN_STEPS: int | None = None
  _synthetic_suffix = ''

  def __init_subclass__(cls, suffix: str | None = None, evaluate: bool = True, **kw: Any) -> None:
    super().__init_subclass__(**kw)
    if suffix is None:
      return
    cls._synthetic_suffix = suffix
    mixture = synthetic_tasks.mixture_name(suffix)
    names = {
      'TRAIN_MIXTURE': mixture,
      'EVAL_TASKS': (mixture,) if evaluate else (),
      'DECODE_TASKS': tuple(synthetic_tasks.task_name(t, suffix) for t in DECODED_FAMILIES)
      if evaluate
      else (),
    }
    for name, value in names.items():
      if name not in cls.__dict__:
        setattr(cls, name, value)

  def synthetic_names(self) -> set[str]:
    """Every seqio name this experiment's synthetic registration creates."""
    suffix = self._synthetic_suffix
    tasks = {synthetic_tasks.task_name(t, suffix) for t in synthetic_tasks.DEFAULT_RATES}
    return {synthetic_tasks.mixture_name(suffix), *tasks}

  def _input(
    self, name: str, split: str, batch_size: int, is_training: bool, num_batches: int | None = -1
  ) -> pax_fiddle.Config[base_input.BaseInput]:
    cfg = super()._input(name, split, batch_size, is_training, num_batches)
    # paxml pads an eval split's last batch; to find it, it first reads and caches the whole
    # split (9 x 512 examples for the mixture: ~5-10 s per input at start-up, in every run).
    # When the programs read fewer full batches than each task's split holds, no batch is
    # ever partial, and the generator gives the same examples every round without the cache.
    reads = (num_batches or 0) * batch_size * jax.process_count()
    if not is_training and name in self.synthetic_names() and 0 < reads <= self.VALIDATION_SIZE:
      cfg.eval_auto_pad = False
    return cfg

  def register_tasks(self) -> None:
    # Not when every name was replaced (a real TRAIN_MIXTURE for a pretraining recipe).
    if self.synthetic_names().isdisjoint(
      {self.TRAIN_MIXTURE, *self.EVAL_TASKS, *self.DECODE_TASKS}
    ):
      return
    synthetic_tasks.register_synthetic_tasks(
      image_size=self.IMAGE_SIZE,
      vocab_path=self.VOCAB_PATH,
      suffix=self._synthetic_suffix,
      rates=self.TASK_RATES,
      num_validation_examples=self.VALIDATION_SIZE,
      ocr_style=self.OCR_STYLE,
    )


class FinetuneData(PaliExperiment):
  """One fine-tuning dataset read from DATA_DIR (see `pali_pax.tasks.finetune_tasks`).

  DATASET: keyword of `register_finetune_tasks` (e.g. 'coco_dir'). EVAL_DATASET /
  EVAL_DATA_DIR: a second dataset, registered for eval and decode only (an
  evaluation set such as XM3600). ALLOW_OUTSIDE_DATA_DIR lets annotation files
  name images outside DATA_DIR (absolute or `..` paths; refused by default).
  MAX_IMAGE_PIXELS: images whose header declares more pixels are dropped
  undecoded (counted).
  """

  DATASET = ''
  DATA_DIR: str | None = None
  EVAL_DATASET = ''
  EVAL_DATA_DIR: str | None = None
  ALLOW_OUTSIDE_DATA_DIR = False
  MAX_IMAGE_PIXELS: int | None = image_ops.MAX_IMAGE_PIXELS

  def register_tasks(self) -> None:
    self._register_finetune_tasks()

  def _register_finetune_tasks(self, **extra: Any) -> list[str]:
    """Registers the tasks of DATA_DIR (and EVAL_DATA_DIR); returns their names."""
    dirs = {self.DATASET: self.DATA_DIR}
    if self.EVAL_DATASET:
      dirs[self.EVAL_DATASET] = self.EVAL_DATA_DIR
    for attr, dataset in (('DATA_DIR', self.DATASET), ('EVAL_DATA_DIR', self.EVAL_DATASET)):
      if dataset and not dirs[dataset]:
        layout = finetune_tasks.FAMILIES[dataset][1]
        raise errors.ConfigError(
          f'{type(self).__name__} needs {attr} (--fdl.{attr}=/path holding {layout})'
        )
    return finetune_tasks.register_finetune_tasks(
      **dirs,
      image_size=self.IMAGE_SIZE,
      vocab_path=self.VOCAB_PATH,
      allow_outside_data_dir=self.ALLOW_OUTSIDE_DATA_DIR,
      max_image_pixels=self.MAX_IMAGE_PIXELS,
      **extra,
    )


class CocoCaptionsData(FinetuneData):
  """COCO captions (CIDEr, BLEU)."""

  DATASET = 'coco_dir'
  TRAIN_MIXTURE = 'pali_coco_captions'
  EVAL_TASKS = ('pali_coco_captions',)
  DECODE_TASKS = ('pali_coco_captions',)


class VqaV2Data(FinetuneData):
  """VQAv2 (VQA accuracy); answers are short."""

  DATASET = 'vqa_dir'
  TRAIN_MIXTURE = 'pali_vqav2'
  EVAL_TASKS = ('pali_vqav2',)
  DECODE_TASKS = ('pali_vqav2',)
  TARGET_LEN = 16


class TextVqaData(FinetuneData):
  """TextVQA (VQA accuracy, ANLS); answers are short."""

  DATASET = 'textvqa_dir'
  TRAIN_MIXTURE = 'pali_textvqa'
  EVAL_TASKS = ('pali_textvqa',)
  DECODE_TASKS = ('pali_textvqa',)
  TARGET_LEN = 16


class Xm3600Data(FinetuneData):
  """Trains on COCO captions (DATA_DIR), scores Crossmodal-3600 (EVAL_DATA_DIR) per language.

  XM3600 is an evaluation set (one 'test' split): eval and decode read it
  language by language (pali_xm3600_<lang>; paxml computes seqio metrics of
  tasks, not of mixtures). XM3600_LANGS limits the languages: each is one
  decode program.
  """

  DATASET = 'coco_dir'
  TRAIN_MIXTURE = 'pali_coco_captions'
  EVAL_DATASET = 'xm3600_dir'
  EVAL_SPLIT = 'test'
  XM3600_LANGS: tuple[str, ...] = ()

  def register_tasks(self) -> None:
    names = self._register_finetune_tasks(xm3600_langs=self.XM3600_LANGS or None)
    per_lang = tuple(n for n in names if n.startswith('pali_xm3600_'))
    self.EVAL_TASKS = self.EVAL_TASKS or per_lang
    self.DECODE_TASKS = self.DECODE_TASKS or per_lang


class JsonlData(FinetuneData):
  """Your own data: DATA_DIR/{train,val}.jsonl (docs/data_format.md).

  One task per "task" value in the files (pali_jsonl_<task>, scored by that
  task's metrics), trained as the mixture pali_jsonl. EVAL_TASKS / DECODE_TASKS
  empty: every pali_jsonl_<task> with lines in val.jsonl, each evaluated on its
  own (paxml computes seqio metrics of tasks only, not of a mixture).
  """

  DATASET = 'jsonl_dir'
  TRAIN_MIXTURE = 'pali_jsonl'
  EVAL_TASKS = ()
  DECODE_TASKS = ()

  def register_tasks(self) -> None:
    super().register_tasks()
    tasks = tuple(
      finetune_tasks.jsonl_tasks_with_data(
        self.DATA_DIR, allow_outside_data_dir=self.ALLOW_OUTSIDE_DATA_DIR
      )
    )
    self.EVAL_TASKS = self.EVAL_TASKS or tasks
    self.DECODE_TASKS = self.DECODE_TASKS or tasks
