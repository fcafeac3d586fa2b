"""Registered PaLI experiments (run with `paxml.main --exp=<module>.<Class>`).

experiment             model  px   batch  lr     mesh [replica,data,mdl]   what
PaliTinySynthetic      tiny   32   32     3e-3   [1,1,1]                   CPU demo, synthetic mixture
PaliTinySyntheticSpmd  tiny   32   32     3e-3   [1,2,4] (8 devices)       same, sharded
PaliTinySyntheticHighRes tiny 48  32     3e-3   [1,1,1]                   phase 2 from a 32 px run
PaliMiniSynthetic      mini   32   32     3e-3   [1,1,1]                   width 64, rates weighted to 4 families
Pali3BPretrain         3b     224  4096   1e-2   [1,256,1] x dcn [1,2,1]   frozen ViT, Adafactor
Pali15BPretrain        15b    224  4096   5e-3   [1,128,4] x dcn [1,2,1]   frozen ViT
Pali17BPretrain        17b    224  4096   5e-3   [1,128,4] x dcn [1,2,1]   1024 TPUv4 chips, 4-way model
Pali17BHighRes         17b    588  1024   5e-3   [1,128,4] x dcn [1,2,1]   10k steps, all params train
PaliFinetune*          3b     224  256    1e-4   [1,32,1]                  COCO / VQAv2 / TextVQA / COCO->XM3600 / JSONL
PaliFinetune*Tiny      tiny   32   32     3e-3   [1,1,1]                   the same on a CPU (SIZE_PRESETS['tiny']; JSONL batch 8)

Any experiment takes another size with `--fdl.MODEL=SIZE` (see
`experiment_base.SIZE_PRESETS`).
"""

from typing import Any

from paxml import experiment_registry
from praxis import pax_fiddle

from pali_pax.core import errors
from pali_pax.fiddle_configs.experiment_base import SIZE_PRESETS, PaliExperiment
from pali_pax.tasks import finetune_tasks, image_ops, synthetic_tasks, vocab

TINY_SUFFIX = '_32'
MINI_SUFFIX = '_32mini'  # its own mixture rates
HIGHRES_SUFFIX = '_48'

# --------------------------------------------------------------- CPU scale


@experiment_registry.register
class PaliTinySynthetic(PaliExperiment):
  """Tiny PaLI on the built-in synthetic multilingual mixture (2-core CPU).

  The demo's recipe (README, "What it reaches"): every example's loss counts
  equally (a 1-token VQA answer as much as a 12-token detection target), the
  mixture weighted to the four families the demo reports (OCR most: reading
  words needs the most examples).
  """

  MODEL = 'tiny'
  IMAGE_SIZE = 32
  VOCAB_SIZE = vocab.SYNTHETIC_VOCAB_SIZE
  FREEZE_VIT = False
  TRAIN_MIXTURE = synthetic_tasks.mixture_name(TINY_SUFFIX)
  EVAL_TASKS = (synthetic_tasks.mixture_name(TINY_SUFFIX),)
  DECODE_TASKS = tuple(
    synthetic_tasks.task_name(t, TINY_SUFFIX) for t in ('caption', 'vqa', 'ocr', 'detection')
  )
  INPUT_LEN = 24
  TARGET_LEN = 16
  BATCH_SIZE = 32
  EVAL_BATCH_SIZE = 32
  OPTIMIZER = 'adam'
  LEARNING_RATE = 3e-3
  WARMUP_STEPS = 50
  LOSS_PER_EXAMPLE = True
  NUM_TRAIN_STEPS = 4000
  CHECKPOINT_EVERY = 1000
  EVAL_EVERY = 2000
  EVAL_BATCHES = 2
  DECODE_BATCHES = 2
  MAX_DECODE_LEN = 16
  # Mixing rates: None = synthetic_tasks.DEFAULT_RATES.
  TASK_RATES: dict[str, float] | None = {
    'caption': 2.0,
    'vqa': 2.0,
    'ocr': 3.0,
    'detection': 2.0,
    'xvqa': 0.5,
    'vqg': 0.5,
    'object_vqa': 0.5,
    'split_cap': 0.5,
    'span_corruption': 0.25,
  }

  def register_tasks(self) -> None:
    synthetic_tasks.register_synthetic_tasks(
      image_size=self.IMAGE_SIZE,
      vocab_path=self.VOCAB_PATH,
      suffix=TINY_SUFFIX,
      rates=self.TASK_RATES,
    )


@experiment_registry.register
class PaliMiniSynthetic(PaliTinySynthetic):
  """The 'mini' PaLI (width 64) on the synthetic tasks, weighted to the four demo families.

  A longer warm-up. Measured in docs/demo_recipe.md: it learns more per step than
  the tiny demo but not per second of the CPU budget.
  """

  MODEL = 'mini'
  WARMUP_STEPS = 200
  TRAIN_MIXTURE = synthetic_tasks.mixture_name(MINI_SUFFIX)
  EVAL_TASKS = (synthetic_tasks.mixture_name(MINI_SUFFIX),)
  DECODE_TASKS = tuple(
    synthetic_tasks.task_name(t, MINI_SUFFIX) for t in ('caption', 'vqa', 'ocr', 'detection')
  )
  # More of the four reported families, detection (the hardest) most.
  TASK_RATES = {
    'caption': 2.0,
    'vqa': 2.0,
    'ocr': 2.0,
    'detection': 3.0,
    'xvqa': 0.5,
    'vqg': 0.5,
    'object_vqa': 0.5,
    'split_cap': 0.5,
    'span_corruption': 0.25,
  }

  def register_tasks(self) -> None:
    synthetic_tasks.register_synthetic_tasks(
      image_size=self.IMAGE_SIZE,
      vocab_path=self.VOCAB_PATH,
      suffix=MINI_SUFFIX,
      rates=self.TASK_RATES,
    )


@experiment_registry.register
class PaliTinySyntheticSpmd(PaliTinySynthetic):
  """The tiny experiment on 8 (emulated) devices: 2-way data, 4-way model."""

  ICI_MESH_SHAPE = (1, 2, 4)


@experiment_registry.register
class PaliTinySyntheticHighRes(PaliTinySynthetic):
  """The tiny two-phase recipe's phase 2: 48 px, from a 32 px run's checkpoint.

  Set INIT_FROM to a PaliTinySynthetic job's checkpoints dir: every variable is
  copied, the ViT position embedding resampled 4x4 -> 6x6 (`pali_pax.init_from`).
  """

  IMAGE_SIZE = 48
  TRAIN_MIXTURE = synthetic_tasks.mixture_name(HIGHRES_SUFFIX)
  EVAL_TASKS = (synthetic_tasks.mixture_name(HIGHRES_SUFFIX),)
  DECODE_TASKS = tuple(
    synthetic_tasks.task_name(t, HIGHRES_SUFFIX) for t in ('caption', 'vqa', 'ocr', 'detection')
  )
  NUM_TRAIN_STEPS = 500
  WARMUP_STEPS = 10

  def register_tasks(self) -> None:
    synthetic_tasks.register_synthetic_tasks(
      image_size=self.IMAGE_SIZE, suffix=HIGHRES_SUFFIX, rates=self.TASK_RATES
    )


# ---------------------------------------------------------- paper recipes


class _PaliPretrain(PaliExperiment):
  """PaLI's main pretraining phase: frozen ViT, 224 px, batch 4096, Adafactor."""

  # No WebLI here: by default the synthetic mixture (at this resolution, with
  # VOCAB_PATH's vocabulary) stands in; set TRAIN_MIXTURE to a real mixture.
  TRAIN_MIXTURE = 'pali_synthetic_mixture_pretrain'
  IMAGE_SIZE = 224
  FREEZE_VIT = True
  INPUT_LEN = 128
  TARGET_LEN = 64
  BATCH_SIZE = 4096
  OPTIMIZER = 'adafactor'
  WARMUP_STEPS = 1000
  # One epoch over ~1.6B examples at batch 4096.
  NUM_TRAIN_STEPS = 1_600_000_000 // 4096

  def register_tasks(self) -> None:
    if self.TRAIN_MIXTURE == 'pali_synthetic_mixture_pretrain':
      synthetic_tasks.register_synthetic_tasks(
        image_size=self.IMAGE_SIZE, vocab_path=self.VOCAB_PATH, suffix='_pretrain'
      )


@experiment_registry.register
class Pali3BPretrain(_PaliPretrain):
  """PaLI-3B (ViT-G/14 + mT5-Large) main pretraining, peak lr 1e-2."""

  MODEL = '3b'
  LEARNING_RATE = 1e-2
  ICI_MESH_SHAPE = (1, 256, 1)
  DCN_MESH_SHAPE = (1, 2, 1)


@experiment_registry.register
class Pali15BPretrain(_PaliPretrain):
  """PaLI-15B (ViT-G/14 + mT5-XXL) main pretraining, peak lr 5e-3."""

  MODEL = '15b'
  LEARNING_RATE = 5e-3
  ICI_MESH_SHAPE = (1, 128, 4)
  DCN_MESH_SHAPE = (1, 2, 1)


@experiment_registry.register
class Pali17BPretrain(_PaliPretrain):
  """PaLI-17B: 1024 TPUv4 chips, 4-way model partitioning."""

  MODEL = '17b'
  LEARNING_RATE = 5e-3
  ICI_MESH_SHAPE = (1, 128, 4)
  DCN_MESH_SHAPE = (1, 2, 1)


@experiment_registry.register
class Pali17BHighRes(Pali17BPretrain):
  """High-resolution phase: 588 px, every parameter trains, 10k steps.

  Start it from the 224 px checkpoint with INIT_FROM; the ViT position
  embeddings are resampled 16x16 -> 42x42 when loading (see
  `pali_pax.init_from`).
  """

  IMAGE_SIZE = 588
  FREEZE_VIT = False
  BATCH_SIZE = 1024
  NUM_TRAIN_STEPS = 10_000
  WARMUP_STEPS = 100


# ------------------------------------------------------------ fine-tuning


class _PaliFinetune(PaliExperiment):
  """Fine-tuning from a PaLI checkpoint (set INIT_FROM) on one dataset.

  DATA_DIR holds the dataset in its usual layout (see
  `pali_pax.tasks.finetune_tasks`); VOCAB_PATH is mT5's SentencePiece model.
  EVAL_DATASET / EVAL_DATA_DIR: a second dataset, registered for eval and
  decode only (an evaluation set such as XM3600).
  ALLOW_OUTSIDE_DATA_DIR lets annotation files name images outside DATA_DIR
  (absolute or `..` paths; refused by default). MAX_IMAGE_PIXELS: images whose
  header declares more pixels are dropped undecoded (counted).
  """

  DATASET = ''  # keyword of `register_finetune_tasks`, e.g. 'coco_dir'
  DATA_DIR: str | None = None
  EVAL_DATASET = ''
  EVAL_DATA_DIR: str | None = None
  ALLOW_OUTSIDE_DATA_DIR = False
  MAX_IMAGE_PIXELS: int | None = image_ops.MAX_IMAGE_PIXELS

  MODEL = '3b'
  FREEZE_VIT = False
  BATCH_SIZE = 256
  OPTIMIZER = 'adafactor'
  LEARNING_RATE = 1e-4
  WARMUP_STEPS = 100
  NUM_TRAIN_STEPS = 20_000
  ICI_MESH_SHAPE = (1, 32, 1)

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


@experiment_registry.register
class PaliFinetuneCocoCaptions(_PaliFinetune):
  """Fine-tune on COCO captions (CIDEr, BLEU) from INIT_FROM."""

  DATASET = 'coco_dir'
  TRAIN_MIXTURE = 'pali_coco_captions'
  EVAL_TASKS = ('pali_coco_captions',)
  DECODE_TASKS = ('pali_coco_captions',)


@experiment_registry.register
class PaliFinetuneVqaV2(_PaliFinetune):
  """Fine-tune on VQAv2 (VQA accuracy) from INIT_FROM."""

  DATASET = 'vqa_dir'
  TRAIN_MIXTURE = 'pali_vqav2'
  EVAL_TASKS = ('pali_vqav2',)
  DECODE_TASKS = ('pali_vqav2',)
  TARGET_LEN = 16


@experiment_registry.register
class PaliFinetuneTextVqa(_PaliFinetune):
  """Fine-tune on TextVQA (VQA accuracy, ANLS) from INIT_FROM."""

  DATASET = 'textvqa_dir'
  TRAIN_MIXTURE = 'pali_textvqa'
  EVAL_TASKS = ('pali_textvqa',)
  DECODE_TASKS = ('pali_textvqa',)
  TARGET_LEN = 16


@experiment_registry.register
class PaliFinetuneXm3600(_PaliFinetune):
  """Fine-tune on COCO captions (DATA_DIR), score on Crossmodal-3600 (EVAL_DATA_DIR).

  XM3600 is an evaluation set (one 'test' split), scored as in PaLI after
  training on COCO captions: eval and decode read its test split language by
  language (pali_xm3600_<lang>; paxml computes seqio metrics of tasks, not of
  mixtures). XM3600_LANGS limits the languages: each is one decode program.
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


@experiment_registry.register
class PaliFinetuneJsonl(_PaliFinetune):
  """Fine-tune on your own data: DATA_DIR/{train,val}.jsonl (docs/data_format.md).

  One task per "task" value in the files (pali_jsonl_<task>, scored by that
  task's metrics), trained as the mixture pali_jsonl, evaluated task by task.
  """

  DATASET = 'jsonl_dir'
  TRAIN_MIXTURE = 'pali_jsonl'
  # Empty: every pali_jsonl_<task> with lines in val.jsonl (paxml computes seqio
  # metrics of tasks only, not of a mixture, so each task is evaluated on its own).
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


# CPU-sized fine-tuning: the tiny model with its preset (shipped 2,100-id vocabulary,
# one device, 32 px), trained from scratch unless INIT_FROM is set.
_CpuSized = type('_CpuSized', (), {'MODEL': 'tiny', **SIZE_PRESETS['tiny']})


class _FinetuneTiny(_CpuSized):
  NUM_TRAIN_STEPS = 1000
  CHECKPOINT_EVERY = 500
  EVAL_EVERY = 500
  EVAL_BATCHES = 2


@experiment_registry.register
class PaliFinetuneCocoCaptionsTiny(_FinetuneTiny, PaliFinetuneCocoCaptions):
  """PaliFinetuneCocoCaptions at CPU size (tiny model, 32 px, 2,100-id vocabulary)."""


@experiment_registry.register
class PaliFinetuneVqaV2Tiny(_FinetuneTiny, PaliFinetuneVqaV2):
  """PaliFinetuneVqaV2 at CPU size (tiny model, 32 px, 2,100-id vocabulary)."""


@experiment_registry.register
class PaliFinetuneTextVqaTiny(_FinetuneTiny, PaliFinetuneTextVqa):
  """PaliFinetuneTextVqa at CPU size (tiny model, 32 px, 2,100-id vocabulary)."""


@experiment_registry.register
class PaliFinetuneXm3600Tiny(_FinetuneTiny, PaliFinetuneXm3600):
  """PaliFinetuneXm3600 at CPU size (tiny model, 32 px, 2,100-id vocabulary)."""


@experiment_registry.register
class PaliFinetuneJsonlTiny(_FinetuneTiny, PaliFinetuneJsonl):
  """PaliFinetuneJsonl at CPU size: tiny model, 32 px, the shipped 2,100-id vocabulary."""

  BATCH_SIZE = 8  # small own-data sets: more steps per epoch
  EVAL_BATCH_SIZE = 8
  WARMUP_STEPS = 20
  NUM_TRAIN_STEPS = 300
  CHECKPOINT_EVERY = 100
  EVAL_EVERY = 100


def finetune_families() -> dict[str, type[PaliExperiment]]:
  """{experiment name: class} of every fine-tune experiment (pod and CPU sizes)."""
  return {
    name: cls
    for name, cls in globals().items()
    if isinstance(cls, type) and issubclass(cls, _PaliFinetune) and not name.startswith('_')
  }


# ------------------------------------------- Fiddle entry points (--fdl_config)


def experiment_config(name: str, **overrides: Any) -> pax_fiddle.Config:
  """`pax_fiddle.Config` of a registered experiment, for `--fdl_config`."""
  cls = globals().get(name)
  if not (isinstance(cls, type) and issubclass(cls, PaliExperiment)):
    raise errors.ConfigError(f'unknown experiment {name!r}')
  return pax_fiddle.Config(cls, **overrides)


def tiny_synthetic() -> pax_fiddle.Config:
  """`--fdl_config=pali_pax.fiddle_configs.experiments.tiny_synthetic`."""
  return experiment_config('PaliTinySynthetic')
