"""Metrics against values computed by hand from their definitions."""

import math

import numpy as np
import pytest

from pali_pax.tasks import metrics
from pali_pax.tasks.metrics_detection import Box, box_iou, parse_boxes


def test_coco_tokenize_like_ptb():
  assert metrics.coco_tokenize('A man\'s "T-shirt", 3.5 feet (tall)!') == (
    "a man 's t-shirt 3.5 feet tall"
  )
  assert metrics.coco_tokenize("Don't  stop... 1,000 dogs' toys - ok") == (
    "do n't stop 1,000 dogs toys ok"
  )


def test_segment_unspaced_splits_only_scripts_without_spaces():
  seg = metrics.segment_unspaced
  assert (
    seg('一只猫 on a mat。') == '一 只 猫 on a mat'
  )  # mixed text; ideographic full stop dropped
  assert seg('猫が「走る」、') == '猫 が 走 る'  # kana and kanji; CJK brackets and comma dropped
  # Thai: the vowel sign U+0E47 and tone-less sara i U+0E34 stay with their consonant.
  assert seg('เด็กกิน') == 'เ ด็ ก กิ น'
  assert seg('ＡＢＣ１２ ｶﾀ') == 'ABC12 カ タ'  # NFKC: full-width ASCII, half-width kana
  for spaced in ('Ein Hund läuft.', '고양이 한 마리', 'кошка на столе', 'قطة على الطاولة'):
    assert seg(spaced) == spaced
  # References and predictions go through the same function: spacing does not matter.
  assert metrics.cider_tokenize('一 只猫。') == metrics.cider_tokenize('一只猫') == '一 只 猫'


def test_cider_hand_computed_for_languages_without_spaces():
  # Two images with disjoint n-grams: every IDF is log(2), so per image CIDEr-D is
  # 10 * mean over n = 1..4 of the clipped cosine (equal lengths: no penalty).
  # Image 1, '一只猫' (3 character tokens) predicted exactly: cos = 1 for n = 1, 2, 3
  # and 0 for n = 4 -> 7.5. Without segmentation it would be one token: 10 * 1/4 = 2.5.
  # Image 2, 'a dog runs' predicted exactly: 7.5 as well.
  targets = [['一只猫'], ['a dog runs']]
  assert metrics.cider(targets, ['一只猫。', 'a dog runs'])['cider'] == pytest.approx(750.0)
  # '一只狗' against '一只猫': unigrams share 2 of 3 equal weights -> 2/3; bigrams
  # {一只, 只狗} vs {一只, 只猫} -> 1/2; n = 3, 4: 0 -> 10 * (2/3 + 1/2) / 4 = 35/12.
  got = metrics.cider(targets, ['一只狗', 'a dog runs'])['cider']
  assert got == pytest.approx(100 * (35 / 12 + 7.5) / 2)
  # Thai 'แมวนอน' (6 characters, no combining marks): a perfect caption scores 10.
  thai = [['แมวนอน'], ['a dog runs']]
  assert metrics.cider(thai, ['แมวนอน', 'a dog runs'])['cider'] == pytest.approx(100 * 17.5 / 2)


def test_cider_hand_computed_three_image_corpus():
  # One reference per image; 'a' occurs in all three, so its IDF log(3/3) is 0 and
  # every other n-gram has IDF log(3). Per image CIDEr-D = 10 * mean_n cos_n.
  targets = [['a cat sits'], ['a dog runs'], ['a bird flies']]
  # Image 1, identical (after tokenization): cos = 1 for n = 1, 2, 3 and 0 for
  # n = 4 (no 4-grams) -> 10 * 3/4 = 7.5.
  # Image 2, 'a dog jumps': unigrams {dog, jumps} vs {dog, runs} with equal weights
  # -> cos 1/2; bigrams {a dog, dog jumps} vs {a dog, dog runs} -> 1/2; n = 3: 0
  # -> 10 * (1/2 + 1/2) / 4 = 2.5 (equal bigram counts: no length penalty).
  # Image 3, empty: 0.  Corpus: (7.5 + 2.5 + 0) / 3, reported x100.
  got = metrics.cider(targets, ['A cat sits.', 'a dog jumps', ''])
  assert got['cider'] == pytest.approx(100 * 10 / 3)
  # Identical captions of >= 4 distinct, informative n-grams give exactly 10 (1000).
  full = [['red car on road'], ['blue boat at sea']]
  assert metrics.cider(full, ['red car on road', 'blue boat at sea'])['cider'] == pytest.approx(
    1000.0
  )
  # A one-image corpus has all IDFs log(1/1) = 0: CIDEr-D is 0 even for a perfect caption.
  assert metrics.cider([['a cat sits']], ['a cat sits'])['cider'] == 0.0
  # Targets may be numpy arrays of bytes (the raw `texts` feature).
  as_bytes = [np.array([t.encode() for t in r], dtype=object) for r in targets]
  assert metrics.cider(as_bytes, [b'a cat sits', 'a dog jumps', ''])['cider'] == pytest.approx(
    got['cider']
  )


def test_bleu_hand_computed():
  # hyp 'the cat sat on mat' vs 'the cat sat on the mat': precisions 5/5, 3/4, 2/3,
  # 1/2; c = 5 < r = 6 -> BP = exp(1 - 6/5).
  want = 100 * math.exp(1 - 6 / 5) * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
  got = metrics.bleu(['the cat sat on the mat'], ['the cat sat on mat'])['bleu']
  assert got == pytest.approx(want, abs=1e-6)
  # Variable reference counts: segment 1 matches fully across its two references
  # (n-gram counts 5/5, 4/4, 3/3, 2/2; closest ref length 5); segment 2 'a dog' vs
  # 'a dog barks' adds 2/2, 1/1, 0/0, 0/0. Corpus c = 7, r = 5 + 3 = 8 ->
  # precisions all 1, BP = exp(1 - 8/7).
  targets = [['the cat sat on the mat', 'a cat sat on mat'], ['a dog barks']]
  got = metrics.bleu(targets, ['the cat sat on mat', 'a dog'])['bleu']
  assert got == pytest.approx(100 * math.exp(1 - 8 / 7), abs=1e-6)


def test_vqa_normalization():
  norm = metrics.vqa_normalize_answer
  assert norm('Two') == '2'
  assert norm('The Red.') == 'red'
  assert norm('dont') == "don't"
  assert norm("couldnt've") == "couldn't've"
  assert norm('its') == 'its'
  assert norm('1,000') == '1000'  # a digit comma removes all punctuation
  assert norm('black/white') == 'black white'
  assert norm('yes!') == 'yes'
  assert norm(' an apple\t') == 'apple'


def test_vqa_accuracy_soft_scores():
  score = metrics.vqa_answer_score
  two = ['2'] * 9 + ['3']
  # '2': each leave-one-out subset keeps >= 8 matches -> 1.
  assert score('two', two) == 1.0
  # '3': the 9 subsets without the '3'-answer keep 1 match -> 1/3; the other 0.
  assert score('3', two) == pytest.approx(9 * (1 / 3) / 10)
  yes2 = ['yes'] * 2 + ['no'] * 8
  # 2 subsets keep 1 match (1/3), 8 keep 2 (2/3) -> (2/3 + 16/3) / 10 = 0.6.
  assert score('Yes', yes2) == pytest.approx(0.6)
  assert score('maybe', yes2) == 0.0
  # Disagreeing answers are punctuation-normalised ('red.' == 'red'): 3 matches, so
  # the 3 subsets without a 'red' keep 2 (2/3) and the 7 others keep 3 (1) -> 0.9.
  assert score('red', ['red.'] * 3 + ['blue'] * 7) == pytest.approx(0.9)
  # A single reference degrades to normalised exact match.
  assert score('The dog', ['dog']) == 1.0
  got = metrics.vqa_accuracy([two, yes2, np.array([b'no'] * 10)], ['2', 'yes', 'no'])
  assert got['vqa_accuracy'] == pytest.approx(100 * (1 + 0.6 + 1) / 3)


def test_anls_hand_computed():
  # 'helo' vs 'hello': 1 edit / 5 -> 0.8; 'he': 3/5 >= 0.5 -> 0; case/space ignored -> 1;
  # best reference wins: 'hel' vs 'help' 1/4 -> 0.75 (vs 'hello' 2/5 -> 0.6).
  targets = [['hello'], ['hello'], ['Hello World'], ['hello', 'help']]
  preds = ['helo', 'he', ' hello   world ', 'hel']
  got = metrics.anls(targets, preds)['anls']
  assert got == pytest.approx(100 * (0.8 + 0 + 1 + 0.75) / 4)
  assert metrics.anls([''], [''])['anls'] == 100.0


def test_exact_match():
  got = metrics.exact_match(['a', ['b', 'c'], 'D'], [' a', 'c', 'd'])
  assert got == {'exact_match': pytest.approx(200 / 3)}
  with pytest.raises(ValueError, match='2 targets but 1 predictions'):
    metrics.exact_match(['a', 'b'], ['a'])


def test_parse_boxes_never_crashes():
  boxes, bad = parse_boxes('0 0 100 100 Traffic  Light ; 5 5 1 1 cat ; junk ; 1 2 3 ; ')
  assert boxes == [Box(0, 0, 100, 100, 'traffic light')] and bad == 3
  assert parse_boxes('') == ([], 0)
  assert parse_boxes(b'1000 0 5 5 cat') == ([], 1)  # coordinates only 0-999
  assert parse_boxes('\x00\xff;;') == ([], 1)


def test_box_iou():
  assert box_iou(Box(0, 0, 100, 100, 'a'), Box(0, 0, 100, 90, 'a')) == pytest.approx(0.9)
  assert box_iou(Box(0, 0, 100, 100, 'a'), Box(0, 0, 100, 50, 'a')) == pytest.approx(0.5)
  assert box_iou(Box(0, 0, 10, 10, 'a'), Box(20, 20, 30, 30, 'a')) == 0.0


def test_detection_metrics_hand_computed():
  targets = ['0 0 100 100 cat ; 200 200 300 300 dog', '10 10 20 20 cat']
  preds = [
    # cat: IoU 0.9 -> TP; its duplicate -> FP; dog misplaced -> FP; junk -> malformed.
    '0 0 100 90 cat ; 0 0 100 100 cat ; 500 500 600 600 dog ; junk',
    '',  # nothing found
  ]
  got = metrics.detection_metrics(targets, preds)
  # cat: P = 1/2, R = 1/2 -> AP 1/4; dog: P = 0, R = 0 -> 0. mAP = 1/8.
  # Micro: TP 1 of 3 predictions, 1 of 3 ground-truth boxes.
  assert got['map50'] == pytest.approx(100 / 8)
  assert got['precision50'] == pytest.approx(100 / 3)
  assert got['recall50'] == pytest.approx(100 / 3)
  assert got['f1_50'] == pytest.approx(100 / 3)
  assert got['malformed_predictions'] == 1.0
  # IoU exactly at the threshold counts; a wrong label never matches.
  edge = metrics.detection_metrics(['0 0 100 100 cat'], ['0 0 100 50 cat'])
  assert edge['map50'] == 100.0
  assert metrics.detection_metrics(['0 0 100 100 cat'], ['0 0 100 100 dog'])['map50'] == 0.0
  strict = metrics.detection_metrics(['0 0 100 100 cat'], ['0 0 100 50 cat'], iou_threshold=0.75)
  assert strict['map75'] == 0.0
  assert math.isnan(metrics.detection_metrics([''], ['1 1 2 2 cat'])['map50'])


def test_metrics_by_task():
  for kind in metrics.METRICS_BY_TASK:
    for fn in metrics.metrics_for(kind):
      out = fn(['0 0 9 9 a'], ['0 0 9 9 a'])
      assert out and all(isinstance(v, float) for v in out.values())
  with pytest.raises(ValueError, match='known'):
    metrics.metrics_for('segmentation')
