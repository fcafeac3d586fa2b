"""Builds the small multilingual SentencePiece model shipped in tasks/data/.

    python -m pali_pax.tasks.build_vocab [--output PATH] [--vocab_size N] [--regenerate]

The corpus is the synthetic tasks' text (generated examples of every task and
language, plus every word-table phrase exhaustively), every prompt template in
every prompt language, and the OCR words. Training is deterministic: fixed
corpus order, no sentence shuffling, one thread, fixed random seed, so running
the script again reproduces the shipped file byte for byte.

The generated examples' texts are frozen in tasks/data/vocab_corpus_texts.txt.gz:
the 1000 examples per task the shipped model was trained on (the per-example
generator of 2026-12-02). The batched generator that replaced it draws other
examples of the same distribution, and a model trained on those would give
most pieces other ids, which every trained checkpoint relies on.
`--regenerate` trains on the current generator's texts instead (a new vocabulary).

Model: SentencePiece BPE, 2000 pieces. (A unigram model, mT5's type, cannot
grow past ~960 pieces on a corpus this small and then splits frequent words;
BPE gives whole-word pieces in every language.) Chinese has no spaces, so for
training only the corpus marks Chinese word boundaries (longest match against
the word table) with SentencePiece's `pretokenization_delimiter`; otherwise
whole Chinese captions become single pieces and nothing is compositional.

Special ids follow mT5: pad 0, eos 1, unk 2, no bos. `byte_fallback` lets any
script encode (unknown characters become UTF-8 byte pieces instead of unk).
Digits are not split: like mT5's vocabulary, which has pieces for most numbers
below 1000, the detection coordinates of the 32 and 48 px tasks (the bins
floor(1000 * px / side)) are single pieces, so a box is ~6 tokens instead of ~15
and two boxes fit a 16-token target. Other numbers encode in shorter pieces.
"""

import argparse
import functools
import gzip
import io
import os
import re

import sentencepiece as spm

from pali_pax.core import batch as batch_lib
from pali_pax.tasks import prompts, synthetic, vocab
from pali_pax.tasks import synthetic_words as words

VOCAB_SIZE = 2000  # pieces; seqio adds 100 sentinel ids -> 2100 ids
_EXAMPLES_PER_TASK = 1000
# Image sides of the CPU experiments (tiny demo, its high-res phase). Every task's text
# comes from the first; detection's from each, so all their coordinates become pieces.
_IMAGE_SIZES = (32, 48)
_SEED = 20220914  # PaLI's arXiv date; any fixed value
FROZEN_TEXTS_PATH = os.path.join(os.path.dirname(__file__), 'data', 'vocab_corpus_texts.txt.gz')
_DELIMITER = '|'  # not in the corpus; pieces never cross it, and it is no piece itself
_HAN = re.compile(r'[\u4e00-\u9fff]+')
# Chinese words of the templates (the word-table values are added in _zh_lexicon).
_ZH_TEMPLATE_WORDS = (
  '灰色', '背景', '上', '的', '照片', '一个', '和', '是', '什么', '颜色', '物体', '形状', '图中',
  '有', '几个', '吗',
)  # fmt: skip


@functools.cache
def _zh_lexicon() -> frozenset[str]:
  t = words.table('zh')
  vals = [*t.colour.values(), *t.shape.values(), *t.numbers, t.yes, t.no, *_ZH_TEMPLATE_WORDS]
  return frozenset(vals)


def segment_han(text: str) -> str:
  """Marks Chinese word boundaries with the delimiter (greedy longest match)."""
  lexicon = _zh_lexicon()
  longest = max(map(len, lexicon))

  def seg(run: str) -> str:
    out, i = [], 0
    while i < len(run):
      n = next(n for n in range(longest, 0, -1) if n == 1 or run[i : i + n] in lexicon)
      out.append(run[i : i + n])
      i += n
    return _DELIMITER + _DELIMITER.join(out) + _DELIMITER

  return _HAN.sub(lambda m: seg(m.group(0)), text)


def _word_table_phrases() -> list[str]:
  """Every colour / shape phrase, question and answer of every synthetic language."""
  out = []
  for lang in words.LANGS:
    t = words.table(lang)
    out += list(t.colour.values()) + list(t.shape.values()) + list(t.numbers) + [t.yes, t.no]
    out.append(t.q_count)
    for shape in words.SHAPES:
      out.append(t.q_colour.format(shape_def=t.shape_def[shape]))
    for colour in words.COLOURS:
      out.append(t.q_shape.format(colour=words.object_colour(lang, colour)))
      for shape in words.SHAPES:
        np_ = words.noun_phrase(lang, colour, shape)
        out += [np_, t.q_presence.format(np=np_), t.alt_text.format(objs=np_)]
  return out


def _prompt_texts() -> list[str]:
  """Every prompt template in every prompt language (free-text parts empty)."""
  out = [prompts.ocr_prompt()]
  for lang in sorted(prompts.LANGUAGES):
    out += [
      prompts.caption_prompt(lang),
      prompts.vqa_prompt('', lang),
      prompts.vqg_prompt('', lang),
      prompts.detection_prompt(lang),
      prompts.split_cap_prompt(lang, 0, '').replace(prompts.SENTINEL_0, ''),
    ]
  return out


def generated_texts(examples_per_task: int = _EXAMPLES_PER_TASK) -> list[str]:
  """Prompt and target of the first examples of every task (detection at every size),
  from the current generator."""
  lines = []
  for task in synthetic.TASKS:
    for size in _IMAGE_SIZES if task == 'detection' else _IMAGE_SIZES[:1]:
      ds = synthetic.dataset(task, 'train', image_size=size, seed=_SEED, stop=examples_per_task)
      for batch in ds.batch(examples_per_task).as_numpy_iterator():
        for inputs, targets in zip(batch['inputs'], batch['targets'], strict=True):
          lines += [inputs.decode().replace(prompts.SENTINEL_0, ''), targets.decode()]
  return lines


def frozen_texts() -> list[str]:
  """`generated_texts()` as the shipped model was trained on them (see the module docstring)."""
  with gzip.open(FROZEN_TEXTS_PATH, 'rt', encoding='utf-8') as f:
    return f.read().split('\n')


def corpus(examples_per_task: int = _EXAMPLES_PER_TASK, regenerate: bool = False) -> list[str]:
  """The training sentences, in a fixed order (Chinese words delimited).

  Args:
    examples_per_task: generated examples per task (other than the default: regenerated).
    regenerate: the current generator's texts instead of the frozen ones.
  """
  lines = _word_table_phrases() + _prompt_texts() + list(words.OCR_WORDS)
  if regenerate or examples_per_task != _EXAMPLES_PER_TASK:
    lines += generated_texts(examples_per_task)
  else:
    lines += frozen_texts()
  return [segment_han(line.strip()) for line in lines if line.strip()]


def train(
  vocab_size: int = VOCAB_SIZE,
  examples_per_task: int = _EXAMPLES_PER_TASK,
  regenerate: bool = False,
) -> bytes:
  """Trains the BPE model; returns the serialized ModelProto."""
  spm.set_random_generator_seed(_SEED)
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(corpus(examples_per_task, regenerate)),
    model_writer=model,
    model_type='bpe',
    vocab_size=vocab_size,
    character_coverage=1.0,
    byte_fallback=True,
    split_digits=False,
    pad_id=batch_lib.PAD_ID,
    eos_id=batch_lib.EOS_ID,
    unk_id=batch_lib.UNK_ID,
    bos_id=-1,
    num_threads=1,
    shuffle_input_sentence=False,
    input_sentence_size=0,
    pretokenization_delimiter=_DELIMITER,
    minloglevel=2,
  )
  return model.getvalue()


def main(argv: list[str] | None = None) -> None:
  """CLI entry: writes the model to --output (default: the shipped path)."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--output', default=vocab.DEFAULT_VOCAB_PATH)
  parser.add_argument('--vocab_size', type=int, default=VOCAB_SIZE)
  parser.add_argument(
    '--regenerate', action='store_true', help="the current generator's texts (a new vocabulary)"
  )
  args = parser.parse_args(argv)
  data = train(args.vocab_size, regenerate=args.regenerate)
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(args.output, 'wb') as f:
    f.write(data)
  print(f'wrote {args.output} ({len(data)} bytes, {args.vocab_size} pieces)')


if __name__ == '__main__':
  main()
