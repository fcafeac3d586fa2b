"""LoRA against full fine-tuning on a transfer task (issue 22 item 5d), end to end.

`benchmarks.transfer.run_recipe` (the recipe `python -m benchmarks.transfer` prints):
pretrain the tiny model on the synthetic mixture with `pali-pax train`, write a JSONL
data set (coloured shapes; a new prompt; answers naming colour, shape and the
quadrant, which no pretraining task asks for), fine-tune it under TRAINABLE='lora'
and 'all' for the same steps, and score both and the pretrained model (the LoRA job's
step 0) on every held-out example with `pali-pax eval`. Three `pali-pax train` and
three `pali-pax eval` launches: ~10-15 min on the shared 2-core machine. Slow.

Bounds, from `python -m benchmarks.transfer` with seeds 0 and 1 (docs/benchmarks.md,
"LoRA transfer (issue 22)"): exact match 0.0 zero-shot; LoRA 27.5 / 24.2, full
fine-tuning 29.2 / 67.5 (LoRA / all 0.94 / 0.36: full fine-tuning learned the quadrant
by step 2000 in one of the two runs, LoRA in neither); the colour word right in 100%
of every fine-tune's answers. The bounds keep about half of the smallest observed
margin. The run is deterministic for a seed on one machine (seed 0 gave the same
figures twice, from two pretrainings); other CPUs round differently.
"""

import numpy as np
import pytest

from benchmarks import transfer, transfer_data
from pali_pax import param_count
from pali_pax.checkpoint import layout
from pali_pax.fiddle_configs import experiments

pytestmark = pytest.mark.slow

SETTINGS = transfer.Settings(seed=0)  # 1500 pretraining steps, 2000 fine-tune steps
LORA_SHARE = 0.25  # LoRA exact match >= this share of full fine-tuning's (seen: 0.94, 0.36)
MIN_GAIN = 12.0  # points of exact match over the pretrained model, each preset (seen: >= 24.2)
MIN_COLOUR = 90.0  # % of answers naming the right colour, each preset (seen: 100)


def _adapter_params(rank: int) -> int:
  """LoRA parameters of the tiny model on the default targets, from its dimensions.

  An adapter on a d_in -> d_out projection holds rank * (d_in + d_out). ViT tiny/8:
  2 layers of width 32, MLP 64 (q, k, v, out: 32 -> 32; MLP 32 -> 64 -> 32). mT5 tiny:
  2 + 2 layers of width 32, gated FF 48 (wi_0, wi_1: 32 -> 48; wo 48 -> 32); decoder
  layers have self- and cross-attention.
  """
  attention = 4 * (32 + 32)
  vit = 2 * (attention + 2 * (32 + 64))
  mt5_ff = 3 * (32 + 48)
  encoder = 2 * (attention + mt5_ff)
  decoder = 2 * (2 * attention + mt5_ff)
  return rank * (vit + encoder + decoder)


@pytest.fixture(scope='module')
def result(tmp_path_factory) -> transfer.TransferResult:
  root = tmp_path_factory.mktemp('transfer')
  return transfer.run_recipe(str(root), SETTINGS)


def test_the_data_set_is_deterministic_and_balanced(tmp_path):
  for folder, seed in (('a', 3), ('b', 3), ('c', 4)):
    transfer_data.write(str(tmp_path / folder), seed=seed, n_train=120, n_val=60)
  for name in ('train.jsonl', 'val.jsonl', 'imgs/val_0007.png'):
    assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes()
    assert (tmp_path / 'a' / name).read_bytes() != (tmp_path / 'c' / name).read_bytes()
  lines = (tmp_path / 'a' / 'train.jsonl').read_text().splitlines()
  answers = [line.split('"targets": ["')[1].split('"')[0] for line in lines]
  assert len(set(answers)) == 60 and all(answers.count(x) == 2 for x in set(answers))


def test_the_trainable_fraction_is_the_counted_one(result):
  base = param_count.component_counts(experiments.PaliFinetuneJsonlTiny().model_config())
  adapters = _adapter_params(transfer.LORA['LORA_RANK'])
  lora, full = result.presets['lora'], result.presets['all']
  assert (full.trainable, full.total) == (base['total'], base['total'])
  assert (lora.trainable, lora.total) == (adapters, base['total'] + adapters)
  assert lora.fraction <= 0.05, lora.fraction


def test_the_lora_job_saved_only_adapters(result):
  step_dir = layout.step_path(layout.checkpoint_dir(result.jobs['lora']), SETTINGS.steps)
  saved = layout.saved_shapes(step_dir)
  assert saved and all(n.endswith(('lora_a', 'lora_b')) for n in saved), sorted(saved)


def test_both_presets_learn_what_the_pretrained_model_cannot(result):
  zero = result.zero_shot['exact_match']
  for preset, r in result.presets.items():
    assert r.metrics['exact_match'] >= zero + MIN_GAIN, (preset, r.metrics, result.zero_shot)
    # What transfers: the pretraining's colours, named in the new answer form.
    assert r.metrics['colour'] >= MIN_COLOUR, (preset, r.metrics)
    assert np.isfinite(r.step_time_s) and r.step_time_s > 0


def test_lora_reaches_a_quarter_of_full_fine_tuning(result):
  """The bound both seeds clear; "most" held for seed 0 only (0.94 vs 0.36)."""
  lora = result.presets['lora'].metrics['exact_match']
  full = result.presets['all'].metrics['exact_match']
  assert lora >= LORA_SHARE * full, transfer.table(result)
