"""What a synthetic caption gets wrong: shapes, colours or order, split by object count.

    python -m benchmarks.caption_errors JOB/eval/pali_synthetic_caption_32.validation.stepN.predictions.json

Reads the predictions file `pali-pax eval` writes for a synthetic caption task and
finds the shape and colour words of each caption (reference and prediction) in
reading order, with the word tables of `tasks.synthetic_words`. Colours are checked
only in the languages whose captions contain the answer form of the colour word
(`COLOUR_LANGS`; German's endings follow it): Arabic and Hindi captions inflect it.

What it showed (docs/demo_recipe.md, "Why captions stop at ~35%"): the demo's
captions get the colours right and, for two-object scenes, the shapes at chance.
"""

import argparse
import collections
import json
import re
from typing import Any

from pali_pax.tasks import synthetic_words as words

COLOUR_LANGS = ('en', 'fr', 'es', 'de', 'zh', 'ru')


def language(prompt: str) -> str:
  """'Generate caption in ES:' -> 'es' (ValueError naming the prompt otherwise)."""
  code = prompt.rstrip(':').split()[-1].lower()
  if code not in words.TABLES:
    raise ValueError(f'no language code at the end of the caption prompt {prompt!r}')
  return code


def named(text: str, forms: dict[str, str]) -> list[str]:
  """The keys of `forms` ({key: word}) whose words occur in `text`, in order of position."""
  hits = [
    (m.start(), key) for key, word in forms.items() for m in re.finditer(re.escape(word), text)
  ]
  return [key for _, key in sorted(hits)]


def breakdown(predictions: list[dict[str, Any]]) -> dict[int, collections.Counter]:
  """{objects in the reference: counts} over `pali-pax eval` prediction records.

  Counts: examples, exact (the whole string), shapes_in_order, shapes_as_set,
  shape_twice (the prediction names a shape twice: never true of a scene),
  colour_examples (those in COLOUR_LANGS) and colours_in_order among them.
  """
  out: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
  for record in predictions:
    lang = language(record['prompt'])
    table = words.TABLES[lang]
    ref, pred = record['references'][0], record['prediction']
    ref_shapes, pred_shapes = named(ref, table.shape), named(pred, table.shape)
    c = out[len(ref_shapes)]
    c['examples'] += 1
    c['exact'] += ref == pred
    c['shapes_in_order'] += ref_shapes == pred_shapes
    c['shapes_as_set'] += sorted(ref_shapes) == sorted(pred_shapes)
    c['shape_twice'] += len(set(pred_shapes)) < len(pred_shapes)
    if lang in COLOUR_LANGS:
      c['colour_examples'] += 1
      c['colours_in_order'] += named(ref, table.colour) == named(pred, table.colour)
  return dict(out)


def _share(c: collections.Counter, key: str, of: str = 'examples') -> str:
  return f'{100 * c[key] / max(c[of], 1):.1f}%'


def format_table(counts: dict[int, collections.Counter]) -> str:
  head = '| objects | examples | exact match | shapes in order | shapes as a set | a shape named twice | colours in order |'
  rows = [head, '|' + '---|' * 7]
  for n in sorted(counts):
    c = counts[n]
    shares = [_share(c, k) for k in ('exact', 'shapes_in_order', 'shapes_as_set', 'shape_twice')]
    shares.append(_share(c, 'colours_in_order', 'colour_examples'))
    rows.append(f'| {n} | {c["examples"]} | ' + ' | '.join(shares) + ' |')
  return '\n'.join(rows)


def main(argv: Any = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('predictions', help='a predictions.json written by pali-pax eval')
  a = p.parse_args(argv)
  with open(a.predictions, encoding='utf-8') as f:
    print(format_table(breakdown(json.load(f))))


if __name__ == '__main__':
  main()
