"""benchmarks.caption_errors: shape / colour words found in the generator's own captions."""

import pytest

from benchmarks import caption_errors
from pali_pax.tasks import synthetic_words as words


def caption(lang: str, *objects: tuple[str, str]) -> str:
  phrases = [words.noun_phrase(lang, c, s) for c, s in objects]
  return (
    phrases[0] if len(phrases) == 1 else words.TABLES[lang].and_.format(a=phrases[0], b=phrases[1])
  )


def record(lang: str, ref: str, pred: str) -> dict:
  return {'prompt': f'Generate caption in {lang.upper()}:', 'references': [ref], 'prediction': pred}


def test_counts_shapes_colours_and_order_per_object_count():
  red_circle, blue_square, green_tri = ('red', 'circle'), ('blue', 'square'), ('green', 'triangle')
  records = [
    record('en', caption('en', red_circle), caption('en', red_circle)),  # right
    record('zh', caption('zh', blue_square), caption('zh', ('blue', 'circle'))),  # shape wrong
    # German inflects the colour ('roter Kreis', 'blaues Quadrat'): still found, in order.
    record('de', caption('de', red_circle, blue_square), caption('de', blue_square, red_circle)),
    record(
      'fr',
      caption('fr', red_circle, green_tri),
      caption('fr', ('red', 'triangle'), ('green', 'triangle')),
    ),
    record('ar', caption('ar', red_circle, green_tri), caption('ar', red_circle, green_tri)),
  ]
  counts = caption_errors.breakdown(records)
  one, two = counts[1], counts[2]

  def counts_of(c, *keys):
    return [c[k] for k in keys]

  assert counts_of(one, 'examples', 'exact', 'shapes_in_order', 'colours_in_order') == [2, 1, 1, 2]
  assert counts_of(two, 'examples', 'exact', 'shapes_in_order', 'shapes_as_set') == [3, 1, 1, 2]
  assert two['shape_twice'] == 1  # the French 'triangle ... triangle'
  # Colours: German swapped (wrong order), French right; Arabic is not checked.
  assert (two['colour_examples'], two['colours_in_order']) == (2, 1)
  table = caption_errors.format_table(counts)
  assert '| 2 | 3 | 33.3% | 33.3% | 66.7% | 33.3% | 50.0% |' in table


def test_a_prompt_without_a_language_code_is_named():
  with pytest.raises(ValueError, match="no language code .* 'Describe:'"):
    caption_errors.breakdown([record('en', 'a', 'b') | {'prompt': 'Describe:'}])
