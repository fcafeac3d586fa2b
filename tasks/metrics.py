"""Evaluation metrics in seqio's signature `fn(targets, predictions) -> dict[str, float]`.

`targets[i]` is one reference or a sequence of references (str, bytes or a numpy
array of bytes, as a postprocessor that returns the raw `texts` feature gives);
`predictions[i]` is the decoded model output. Every score is in percent (0-100,
CIDEr x100 as papers report it: "149.1") so that summaries share a scale.

  cider(targets, predictions)            -> {'cider'}         CIDEr-D, pycocoevalcap; characters
                                                              are tokens of zh/ja/th/... text
  bleu(targets, predictions)             -> {'bleu'}          corpus BLEU-4, sacrebleu
  vqa_accuracy(targets, predictions)     -> {'vqa_accuracy'}  official VQA soft accuracy
  anls(targets, predictions)             -> {'anls'}          ANLS, threshold 0.5
  exact_match(targets, predictions)      -> {'exact_match'}
  detection_metrics(targets, predictions) -> {'map50', 'precision50', 'recall50', 'f1_50',
                                            'malformed_predictions'} (metrics_detection)

`METRICS_BY_TASK` / `metrics_for(kind)` give the metric fns of each task kind: the
one table the seqio tasks (synthetic_tasks, finetune_tasks) take their metric_fns from.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import editdistance
import numpy as np
import sacrebleu
from pycocoevalcap.cider.cider import Cider

from pali_pax.core import errors
from pali_pax.tasks.metrics_detection import detection_metrics, parse_boxes

MetricFn = Callable[[Sequence[Any], Sequence[Any]], dict[str, float]]


def _text(x: Any) -> str:
  return x.decode('utf-8') if isinstance(x, bytes) else str(x)


def _refs(target: Any) -> list[str]:
  """One target as a list of reference strings."""
  if isinstance(target, (str, bytes)):
    return [_text(target)]
  if isinstance(target, np.ndarray) and target.ndim == 0:
    return [_text(target.item())]
  return [_text(t) for t in target]


def _checked(targets: Sequence[Any], predictions: Sequence[Any]) -> tuple[list, list]:
  if len(targets) != len(predictions):
    raise errors.InputValidationError(f'{len(targets)} targets but {len(predictions)} predictions')
  return [_refs(t) for t in targets], [_text(p) for p in predictions]


# ---------------------------------------------------------------- captioning

# Clitics the PTB tokenizer splits off their word ("dog's" -> "dog 's").
_CLITICS = ("'s", "'re", "'ve", "'ll", "'d", "'m", "n't")
_QUOTES = str.maketrans({'\u2019': "'", '\u2018': "'", '\u201c': '"', '\u201d': '"'})


def coco_tokenize(text: str) -> str:
  """Lowercases and tokenizes like the coco-caption PTBTokenizer, in pure Python.

  coco-caption runs Stanford's PTBTokenizer (Java, not available here) and then
  drops punctuation tokens. This reproduces that for ordinary captions: lowercase,
  split clitics ("don't" -> "do n't"), drop . , ? ! : ; quotes brackets and bare
  dashes, keep decimal points / thousands commas inside numbers and intra-word
  hyphens ("t-shirt"). Exotic inputs (URLs, emoticons) may tokenize differently.
  """
  t = text.translate(_QUOTES).lower()
  t = re.sub(r"(\w)(n't)\b", r'\1 \2', t)
  t = re.sub(r"(\w)('s|'re|'ve|'ll|'d|'m)\b", r'\1 \2', t)
  t = re.sub(r'(?<!\d)[.,]|[.,](?!\d)', ' ', t)
  t = re.sub(r'[?!:;"`()\[\]{}]', ' ', t)
  tokens = []
  for tok in t.split():
    if tok not in _CLITICS:
      tok = tok.strip("'")  # quotes around words are split off and dropped by PTB
    tok = tok.strip('-') if set(tok) == {'-'} else tok
    if tok:
      tokens.append(tok)
  return ' '.join(tokens)


# Scripts written without spaces between words (docs/metrics.md): Han ideographs
# (with extensions and compatibility forms), Hiragana, Katakana, Thai, Lao, Khmer,
# Myanmar, Tibetan. Korean (Hangul) uses spaces and is not listed.
_UNSPACED_RANGES = (
  (0x0E00, 0x0E7F),  # Thai
  (0x0E80, 0x0EFF),  # Lao
  (0x0F00, 0x0FFF),  # Tibetan
  (0x1000, 0x109F),  # Myanmar
  (0x1780, 0x17FF),  # Khmer
  (0x3000, 0x303F),  # CJK symbols and punctuation
  (0x3040, 0x30FF),  # Hiragana, Katakana
  (0x31F0, 0x31FF),  # Katakana phonetic extensions
  (0x3400, 0x4DBF),  # CJK extension A
  (0x4E00, 0x9FFF),  # CJK unified ideographs
  (0xF900, 0xFAFF),  # CJK compatibility ideographs
  (0x20000, 0x3134F),  # CJK extensions B-G
)


def _unspaced(ch: str) -> bool:
  cp = ord(ch)
  return any(lo <= cp <= hi for lo, hi in _UNSPACED_RANGES)


def segment_unspaced(text: str) -> str:
  """Character segmentation of scripts written without spaces (zh, ja, th, lo, km, my, bo).

  The text is NFKC-normalised; then every character of those scripts becomes a
  token of its own; a combining mark
  (Thai vowel and tone marks, ...) stays with the character before it; their
  punctuation ('。', '、', '「', full-width '！') is dropped, as coco-caption drops
  ASCII punctuation. Text in other scripts is returned unchanged, so one corpus
  may mix languages: "一只猫 on a mat" -> "一 只 猫 on a mat".
  """
  out: list[str] = []
  # NFKC first: full-width Latin and digits become ASCII words, half-width kana full-width.
  for ch in unicodedata.normalize('NFKC', text):
    if not _unspaced(ch):
      out.append(ch)
    elif unicodedata.category(ch).startswith('M'):
      out.append(ch)  # combining mark: stays attached to its base character
    elif unicodedata.category(ch)[0] in 'PZS':
      out.append(' ')  # punctuation, ideographic space, symbols
    else:
      out.append(f' {ch}')
  return ' '.join(''.join(out).split())


def cider_tokenize(text: str) -> str:
  """The tokenization CIDEr applies to references and predictions alike.

  `segment_unspaced` (character tokens for zh / ja / th / ...), then
  `coco_tokenize` (lowercase, PTB-style clitics, punctuation dropped).
  """
  return coco_tokenize(segment_unspaced(text))


def cider(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
  """Corpus CIDEr-D (pycocoevalcap `Cider`: n=4, sigma=6, x10) times 100.

  Captions are tokenized with `cider_tokenize`: characters are the tokens of
  languages written without spaces (`segment_unspaced`; docs/metrics.md), and
  `coco_tokenize` stands in for the PTBTokenizer (which needs Java). The
  IDF weights come from the references of the whole corpus given here, so a
  caption's score depends on the other examples: a one-image corpus scores 0 (every
  n-gram has document frequency 1 of 1, so IDF log(1/1) = 0), and per-batch values
  differ from the score over a full split. Evaluate whole splits.

  Returns:
    {'cider': mean CIDEr-D over examples x 100}.
  """
  refs, preds = _checked(targets, predictions)
  if not preds:
    return {'cider': 0.0}
  for i, r in enumerate(refs):
    if not r:
      raise errors.InputValidationError(f'cider: example {i} has no reference captions')
  gts = {i: [cider_tokenize(x) for x in r] for i, r in enumerate(refs)}
  res = {i: [cider_tokenize(p)] for i, p in enumerate(preds)}
  score, _ = Cider().compute_score(gts, res)
  return {'cider': 100.0 * float(score)}


def bleu(
  targets: Sequence[Any],
  predictions: Sequence[Any],
  tokenize: str = '13a',
  lowercase: bool = False,
) -> dict[str, float]:
  """Corpus BLEU-4 with sacrebleu; any number of references per example.

  Args:
    targets: reference(s) per example (examples may have different counts).
    predictions: one hypothesis per example.
    tokenize: sacrebleu tokenizer ('13a' default, 'zh', 'ja-mecab', 'flores200', ...).
    lowercase: case-insensitive BLEU.

  Returns:
    {'bleu': sacrebleu score, 0-100}.
  """
  refs, preds = _checked(targets, predictions)
  if not preds:
    return {'bleu': 0.0}
  width = max(len(r) for r in refs)
  # sacrebleu takes reference *streams*; None marks a missing reference.
  streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
  result = sacrebleu.corpus_bleu(preds, streams, tokenize=tokenize, lowercase=lowercase)
  return {'bleu': float(result.score)}


# ---------------------------------------------------------------- VQA

_VQA_PUNCT = ';/[]"{}()=+\\_-><@`,?!'
_NUMBER_WORDS = {
  w: str(i) for i, w in enumerate('zero one two three four five six seven eight nine ten'.split())
}
_NUMBER_WORDS['none'] = '0'
_ARTICLES = frozenset({'a', 'an', 'the'})
# Canonical English contractions; the map accepts every spelling that drops some of
# their apostrophes ("dont", "couldntve", "couldn'tve" -> ...). The official map keys
# the I-contractions with a capital I, which never matches the lowercased words, so
# they are absent here too.
_CANONICAL_CONTRACTIONS = """
ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've
hasn't haven't he'd he'd've he's how'd how'll how's isn't it'd it'd've it'll it's let's
ma'am mightn't mightn't've might've mustn't must've needn't not've o'clock oughtn't
'ow's'at shan't she'd've she's should've shouldn't shouldn't've somebody'd
somebody'd've somebody'll somebody's someone'd someone'd've someone'll someone's
something'd something'd've something'll that's there'd there'd've there're there's
they'd they'd've they'll they're they've 'twas wasn't we'd've we've weren't what'll
what're what's what've when's where'd where's where've who'd who'd've who'll who's
who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll
y'all'd've you'd you'd've you'll you're you've
""".split()


def _contraction_map() -> dict[str, str]:
  out = {}
  for canon in _CANONICAL_CONTRACTIONS:
    pos = [i for i, c in enumerate(canon) if c == "'"]
    for mask in range(1 << len(pos)):
      drop = {p for k, p in enumerate(pos) if mask >> k & 1}
      variant = ''.join(c for i, c in enumerate(canon) if i not in drop)
      if variant != canon:
        out.setdefault(variant, canon)
  # 'its' (the possessive) is a word of its own; the official map leaves it alone.
  out.pop('its', None)
  return out


_CONTRACTIONS = _contraction_map()
_COMMA_IN_NUMBER = re.compile(r'(\d)(,)(\d)')
_PERIOD = re.compile(r'(?!<=\d)(\.)(?!\d)')  # sic: the official pattern (a lookahead)


def _vqa_punctuation(text: str) -> str:
  """The official processPunctuation: drop or space out punctuation, strip periods."""
  out = text
  has_number_comma = _COMMA_IN_NUMBER.search(text) is not None
  for p in _VQA_PUNCT:
    # Punctuation next to a space (or any text with a "1,000" number) is removed,
    # otherwise it separates words ("black/white" -> "black white").
    if p + ' ' in text or ' ' + p in text or has_number_comma:
      out = out.replace(p, '')
    else:
      out = out.replace(p, ' ')
  return _PERIOD.sub('', out)


def _vqa_digit_article(text: str) -> str:
  """The official processDigitArticle: lowercase, number words -> digits, no articles."""
  words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
  return ' '.join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_normalize_answer(answer: str) -> str:
  """The official VQA normalisation of a predicted answer."""
  answer = answer.replace('\n', ' ').replace('\t', ' ').strip()
  return _vqa_digit_article(_vqa_punctuation(answer))


def vqa_answer_score(prediction: str, answers: Sequence[str]) -> float:
  """Soft accuracy in [0, 1] of one prediction against the human answers.

  As the official script: the prediction is normalised; the answers are
  punctuation-normalised only when they disagree; the score is
  min(1, #matching answers / 3) averaged over the leave-one-out subsets of the
  answers. With a single answer (not a VQA set) it is normalised exact match.
  """
  pred = vqa_normalize_answer(prediction)
  gts = [a.replace('\n', ' ').replace('\t', ' ').strip() for a in answers]
  if len(gts) == 1:
    return float(pred == vqa_normalize_answer(gts[0]))
  if len(set(gts)) > 1:
    gts = [_vqa_punctuation(a) for a in gts]
  matches = sum(a == pred for a in gts)
  # Leaving out answer i removes one match exactly when answer i matches.
  accs = [min(1.0, (matches - (a == pred)) / 3.0) for a in gts]
  return sum(accs) / len(accs) if accs else 0.0


def vqa_accuracy(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
  """Official VQA accuracy (VQAv2, OK-VQA, TextVQA). Returns {'vqa_accuracy': 0-100}."""
  refs, preds = _checked(targets, predictions)
  if not preds:
    return {'vqa_accuracy': 0.0}
  scores = [vqa_answer_score(p, r) for p, r in zip(preds, refs, strict=True)]
  return {'vqa_accuracy': 100.0 * float(np.mean(scores))}


# ---------------------------------------------------------------- text answers


def _anls_norm(s: str) -> str:
  return ' '.join(s.lower().split())


def anls(
  targets: Sequence[Any], predictions: Sequence[Any], threshold: float = 0.5
) -> dict[str, float]:
  """Average Normalized Levenshtein Similarity (ST-VQA / DocVQA).

  Per example: max over references of 1 - NL, where NL = edit distance / length
  of the longer string (case- and whitespace-normalised), and 0 when NL >= threshold.

  Returns:
    {'anls': mean over examples x 100}.
  """
  refs, preds = _checked(targets, predictions)
  if not preds:
    return {'anls': 0.0}
  scores = []
  for p, rs in zip(preds, refs, strict=True):
    p = _anls_norm(p)
    best = 0.0
    for r in rs:
      r = _anls_norm(r)
      longest = max(len(p), len(r))
      nl = editdistance.eval(p, r) / longest if longest else 0.0
      best = max(best, 1.0 - nl if nl < threshold else 0.0)
    scores.append(best)
  return {'anls': 100.0 * float(np.mean(scores))}


def exact_match(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
  """Share of predictions equal to one of their references (surrounding whitespace ignored).

  Returns:
    {'exact_match': 0-100}.
  """
  refs, preds = _checked(targets, predictions)
  if not preds:
    return {'exact_match': 0.0}
  hits = [p.strip() in {r.strip() for r in rs} for p, rs in zip(preds, refs, strict=True)]
  return {'exact_match': 100.0 * float(np.mean(hits))}


# ---------------------------------------------------------------- registry

# Task kind -> metric fns, for every seqio task (synthetic_tasks, finetune_tasks).
# Kinds: the synthetic task names, which the real datasets share ('caption', 'vqa'),
# plus 'textvqa'. The headline metric comes first (CIDEr, VQA accuracy); exact match
# rides along on caption / vqa because the synthetic targets are deterministic, so
# it is their sharpest learning signal (on real captions it is cheap and near 0).
METRICS_BY_TASK: dict[str, tuple[MetricFn, ...]] = {
  'caption': (cider, bleu, exact_match),
  'vqa': (vqa_accuracy, exact_match),
  'xvqa': (exact_match,),
  'textvqa': (vqa_accuracy, anls),
  'ocr': (exact_match, anls),
  'vqg': (exact_match,),
  'object_vqa': (exact_match,),
  'detection': (detection_metrics,),
  'split_cap': (exact_match,),
  'span_corruption': (),  # no decode metric: the loss is the measure
}


def metrics_for(kind: str) -> list[MetricFn]:
  """The metric fns of a task kind (a key of METRICS_BY_TASK); ValueError listing them."""
  if kind not in METRICS_BY_TASK:
    raise errors.ConfigError(f'unknown task kind {kind!r}; known: {sorted(METRICS_BY_TASK)}')
  return list(METRICS_BY_TASK[kind])


__all__ = [
  'METRICS_BY_TASK',
  'anls',
  'bleu',
  'cider',
  'cider_tokenize',
  'coco_tokenize',
  'detection_metrics',
  'exact_match',
  'metrics_for',
  'parse_boxes',
  'segment_unspaced',
  'vqa_accuracy',
  'vqa_answer_score',
  'vqa_normalize_answer',
]
