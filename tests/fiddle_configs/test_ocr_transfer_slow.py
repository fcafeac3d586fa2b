"""Reading transfers beyond the demo's generator (issue 23 item 2), end to end.

`benchmarks.ocr_transfer.run_recipe`: pretrain the tiny model as `make demo` does, with
the OCR words in random colours and sizes (`pali-pax pretrain-vit`, then 10,000 steps of
`pali-pax train` of PaliTinySyntheticVariedOcr, its ViT frozen), write 24,000 + 256
renderings of the demo's 40 OCR words in another TrueType font (DejaVu Sans) at random
positions, sizes (10-14 px) and colours ('rgb' style) as TextVQA 0.5.1, fine-tune
PaliFinetuneTextVqaTiny from the pretrained checkpoints for 5000 steps and score every
held-out rendering with `pali-pax eval --task pali_textvqa`. Three `pali-pax` training
launches and two evals: ~12 min on an idle 2-core machine. Slow.

Bounds: the issue's goal, >= 80% exact match on held-out renderings. Seen: 97.7% from
SEED 1234's pretraining, 95.3% from SEED 7's (docs/demo_recipe.md). The pretrained model
before fine-tuning answers none (it never saw the question: seen 0%); chance is 2.5%.
"""

import pytest

from benchmarks import ocr_transfer

pytestmark = pytest.mark.slow

SETTINGS = ocr_transfer.Settings(seed=0, style='rgb')
MIN_EXACT = 80.0  # % exact match on held-out renderings after fine-tuning (issue 23's goal)
ZERO_SHOT_MAX = 10.0  # % before fine-tuning (chance 2.5%)


@pytest.fixture(scope='module')
def result(tmp_path_factory) -> dict:
  return ocr_transfer.run_recipe(str(tmp_path_factory.mktemp('ocr_transfer')), SETTINGS)


def test_the_fine_tuned_model_reads_held_out_renderings(result):
  arms = result['arms']
  assert arms['finetuned'].metrics['n'] == SETTINGS.n_val
  assert arms['finetuned'].exact_match >= MIN_EXACT, {k: a.exact_match for k, a in arms.items()}
  # On TextVQA's 10 identical answers, VQA accuracy is exact match.
  assert arms['finetuned'].metrics['vqa_accuracy'] == pytest.approx(arms['finetuned'].exact_match)


def test_reading_is_learned_in_the_fine_tune_not_before(result):
  assert result['arms']['zero_shot'].exact_match <= ZERO_SHOT_MAX
