"""Registered PaLI experiments (run with `paxml.main --exp=<module>.<Class>`).

experiment             model  px   batch  lr     mesh [replica,data,mdl]   what
PaliTinySynthetic      tiny   32   32     3e-3   [1,1,1]                   synthetic mixture, trained whole
PaliTinySyntheticSpmd  tiny   32   32     3e-3   [1,2,4] (8 devices)       same, sharded
PaliTinySyntheticPretrainedVit tiny 32 32 3e-3   [1,1,1]                   the demo: pretrained ViT, frozen
PaliTinySyntheticHighRes tiny 48  32     3e-3   [1,1,1]                   phase 2 from a 32 px run
PaliTinySyntheticVariedOcr tiny 32 32    3e-3   [1,1,1]                   the demo, OCR in random colours/sizes
PaliMiniSynthetic      mini   32   32     3e-3   [1,1,1]                   width 64, rates weighted to 4 families
Pali3BPretrain         3b     224  4096   1e-2   [1,128,4] x dcn [1,2,1]   frozen ViT, Adafactor
Pali15BPretrain        15b    224  4096   5e-3   [1,128,4] x dcn [1,2,1]   frozen ViT
Pali17BPretrain        17b    224  4096   5e-3   [1,128,4] x dcn [1,2,1]   1024 TPUv4 chips, 4-way model
Pali17BHighRes         17b    588  1024   5e-3   [1,128,4] x dcn [1,2,1]   10k steps, all params train
PaliFinetune*          3b     224  256    1e-4   [1,8,4]                   COCO / VQAv2 / TextVQA / COCO->XM3600 / JSONL
PaliFinetune*Tiny      tiny   32   32     3e-3   [1,1,1]                   the same on a CPU (SIZE_PRESETS['tiny']; JSONL batch 8)

Each is a data mixin (`data`), a recipe and a size (`experiment_base.SIZE_PRESETS`,
applied from MODEL). Any experiment takes another size with `--fdl.MODEL=SIZE`.
"""

from typing import Any

from paxml import experiment_registry
from praxis import pax_fiddle

from pali_pax.core import errors
from pali_pax.fiddle_configs import data
from pali_pax.fiddle_configs.experiment_base import PaliExperiment, sized

__all__ = ['PaliExperiment']  # re-exported: users subclass it from here

TINY_SUFFIX = '_32'
MINI_SUFFIX = '_32mini'  # its own mixture rates
HIGHRES_SUFFIX = '_48'
VARIED_OCR_SUFFIX = '_32varied_ocr'

# --------------------------------------------------------------- CPU scale


@experiment_registry.register
class PaliTinySynthetic(data.SyntheticData, suffix=TINY_SUFFIX):
  """Tiny PaLI on the built-in synthetic multilingual mixture (2-core CPU), trained whole.

  From a random start, every parameter trains (the demo's recipe until it took
  PaliTinySyntheticPretrainedVit, below; docs/demo_recipe.md). Every
  example's loss counts equally (a 1-token VQA answer as much as a 12-token
  detection target), the mixture weighted to the four families the demo reports
  (OCR and detection most: reading words and placing boxes need the most examples),
  and 18,000 steps (~10 min on 2 cores) under a cosine decay to 0: the annealed end
  is where reading comes (75% vs ~30% under the inverse square root, same steps), and
  18,000 steps gave every family more than 12,000 did on two seeds.
  The decay depends on NUM_TRAIN_STEPS: a finished run resumed with more steps goes
  back up to a mid-run rate, so runs meant to be extended set LR_SCHEDULE='rsqrt'.
  """

  MODEL = 'tiny'
  FREEZE_VIT = False
  LOSS_PER_EXAMPLE = True
  NUM_TRAIN_STEPS = 18_000
  LR_SCHEDULE = 'cosine'
  CHECKPOINT_EVERY = 2000
  EVAL_EVERY = 4000
  EVAL_BATCHES = 2
  DECODE_BATCHES = 2
  TASK_RATES = {
    'caption': 2.0,
    'vqa': 2.0,
    'ocr': 3.0,
    'detection': 4.0,
    'xvqa': 0.5,
    'vqg': 0.5,
    'object_vqa': 0.5,
    'split_cap': 0.5,
    'span_corruption': 0.25,
  }


@experiment_registry.register
class PaliTinySyntheticPretrainedVit(PaliTinySynthetic):
  """The demo's recipe: PaliTinySynthetic on a pretrained ViT, kept frozen (PaLI's recipe).

  A job starts from a ViT pretrained for VIT_PRETRAIN_STEPS steps on the scenes'
  own labels (`pali_pax.vit_pretrain`: shapes, colours and boxes per slot, and OCR
  words), converted into its step-0 checkpoint; `pali-pax demo` does both. Trained
  with the ViT, the mixture overwrote the shapes the tower could learn
  (docs/demo_recipe.md, "Why captions stop"); frozen, they stay, and each step is
  cheaper. Without that start the ViT stays a frozen random init: train
  PaliTinySynthetic instead.
  """

  FREEZE_VIT = True
  VIT_PRETRAIN_STEPS = 4000
  NUM_TRAIN_STEPS = 10_000
  EVAL_EVERY = 5000


@experiment_registry.register
class PaliMiniSynthetic(PaliTinySynthetic, suffix=MINI_SUFFIX):
  """The 'mini' PaLI (width 64) on the synthetic tasks, weighted to the four demo families.

  A longer warm-up. Measured in docs/demo_recipe.md: it learns more per step than
  the tiny demo but not per second of the CPU budget.
  """

  MODEL = 'mini'
  WARMUP_STEPS = 200
  NUM_TRAIN_STEPS = 4000  # the recipe docs/demo_recipe.md measured for it
  LR_SCHEDULE = 'rsqrt'
  # More of the four reported families, detection (the hardest) most.
  TASK_RATES = {**PaliTinySynthetic.TASK_RATES, 'ocr': 2.0, 'detection': 3.0}


@experiment_registry.register
class PaliTinySyntheticVariedOcr(PaliTinySyntheticPretrainedVit, suffix=VARIED_OCR_SUFFIX):
  """The demo's recipe with the OCR words in random colours and sizes, in the ViT's
  pretraining and in the mixture: a pretraining for reading other text.

  Text and background levels at least 150 apart with random tints, fonts within 2 px
  of 12 (`synthetic_scene`, OCR_STYLE 'varied'). Start a job with `pali-pax
  pretrain-vit` as the demo does. Fine-tuned on words in another TrueType font at random
  sizes and colours (`benchmarks.ocr_transfer --style rgb`), it reads 98% of held-out
  renderings (docs/demo_recipe.md, "Reading beyond the demo's generator"). Trained
  whole from a random start instead (PaliTinySynthetic with OCR_STYLE='varied', 12,000
  steps: the earlier form of this experiment) the tiny model did not learn to read them.
  """

  OCR_STYLE = 'varied'


@experiment_registry.register
class PaliTinySyntheticSpmd(PaliTinySynthetic):
  """The tiny experiment on 8 (emulated) devices: 2-way data, 4-way model."""

  ICI_MESH_SHAPE = (1, 2, 4)


@experiment_registry.register
class PaliTinySyntheticHighRes(PaliTinySynthetic, suffix=HIGHRES_SUFFIX):
  """The tiny two-phase recipe's phase 2: 48 px, from a 32 px run's checkpoint.

  Set INIT_FROM to a PaliTinySynthetic job's checkpoints dir: every variable is
  copied, the ViT position embedding resampled 4x4 -> 6x6 (`pali_pax.init_from`).
  """

  IMAGE_SIZE = 48
  NUM_TRAIN_STEPS = 500
  WARMUP_STEPS = 10


# ---------------------------------------------------------- paper recipes


class _PaliPretrain(data.SyntheticData, suffix='_pretrain', evaluate=False):
  """PaLI's main pretraining phase: frozen ViT, 224 px, Adafactor, the size's pod mesh.

  No WebLI here: by default the synthetic mixture (at this resolution, with
  VOCAB_PATH's vocabulary) stands in; set TRAIN_MIXTURE to a real mixture.
  """

  FREEZE_VIT = True
  INPUT_LEN = 128
  WARMUP_STEPS = 1000
  # One epoch over ~1.6B examples at batch 4096.
  NUM_TRAIN_STEPS = 1_600_000_000 // 4096


@experiment_registry.register
class Pali3BPretrain(_PaliPretrain, sized('3b')):
  """PaLI-3B (ViT-G/14 + mT5-Large) main pretraining, peak lr 1e-2."""

  LEARNING_RATE = 1e-2


@experiment_registry.register
class Pali15BPretrain(_PaliPretrain, sized('15b')):
  """PaLI-15B (ViT-G/14 + mT5-XXL) main pretraining, peak lr 5e-3."""

  LEARNING_RATE = 5e-3


@experiment_registry.register
class Pali17BPretrain(_PaliPretrain, sized('17b')):
  """PaLI-17B: 1024 TPUv4 chips, 4-way model partitioning."""

  LEARNING_RATE = 5e-3


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


class _PaliFinetune(sized('3b')):
  """Fine-tuning PaLI-3B from a checkpoint (set INIT_FROM; VOCAB_PATH: mT5's model).

  A smaller job than pretraining: batch 256 on a 32-chip slice (v4-64), every variable
  trains (TRAINABLE 'all'). The mesh is [1, 8, 4], 4-way model partitioning as in
  pretraining: the fine-tune memory plan (docs/pods.md section 5, `benchmarks/finetune_plan`)
  compiles this exact step at 13.0 GiB per chip (11.9 GiB with VQA's 16-token
  targets), within a v4 chip's 32 GiB, while pure data parallel [1, 32, 1] does not
  fit even at 1 example per chip (33.7 GiB: the whole float32 model, its gradients
  and the step's temporaries on every chip).
  """

  FREEZE_VIT = False
  BATCH_SIZE = 256
  EVAL_BATCH_SIZE = 64
  ICI_MESH_SHAPE = (1, 8, 4)
  DCN_MESH_SHAPE = None
  LEARNING_RATE = 1e-4
  WARMUP_STEPS = 100
  NUM_TRAIN_STEPS = 20_000


@experiment_registry.register
class PaliFinetuneCocoCaptions(data.CocoCaptionsData, _PaliFinetune):
  """Fine-tune on COCO captions (CIDEr, BLEU) from INIT_FROM."""


@experiment_registry.register
class PaliFinetuneVqaV2(data.VqaV2Data, _PaliFinetune):
  """Fine-tune on VQAv2 (VQA accuracy) from INIT_FROM."""


@experiment_registry.register
class PaliFinetuneTextVqa(data.TextVqaData, _PaliFinetune):
  """Fine-tune on TextVQA (VQA accuracy, ANLS) from INIT_FROM."""


@experiment_registry.register
class PaliFinetuneXm3600(data.Xm3600Data, _PaliFinetune):
  """Fine-tune on COCO captions (DATA_DIR), score on Crossmodal-3600 (EVAL_DATA_DIR)."""


@experiment_registry.register
class PaliFinetuneJsonl(data.JsonlData, _PaliFinetune):
  """Fine-tune on your own data: DATA_DIR/{train,val}.jsonl (docs/data_format.md)."""


class _FinetuneTiny(sized('tiny')):
  """CPU-sized fine-tuning: the tiny model with its preset (shipped 2,100-id vocabulary,
  one device, 32 px), trained from scratch unless INIT_FROM is set."""

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
    if isinstance(cls, type) and issubclass(cls, data.FinetuneData) and name.startswith('Pali')
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
