"""The SentencePiece vocabulary: shipped model, mT5 ids, TF ops = Python ids, errors."""

import gc
import shutil
import weakref

import pytest
import sentencepiece as spm
import tensorflow as tf

from pali_pax.core import errors
from pali_pax.tasks import build_vocab, synthetic_words, vocab

TEXTS = [
  'Generate caption in FR:',
  'un cercle rouge et un carré bleu',
  'ein roter Kreis und ein blaues Quadrat',
  '¿Qué forma tiene el objeto rojo?',
  '一个红色的圆形和一个蓝色的正方形',
  'क्या चित्र में एक हरा वृत्त है?',
  'هل في الصورة دائرة حمراء؟',
  'Какой формы красный объект?',
  '93 281 750 937 квадрат ; 0 0 656 656 مربع',
  'unseen: Ελληνικά ☃ 🙂 ñ',  # other scripts fall back to bytes, never unk
]


def test_default_vocabulary_sizes_and_special_ids():
  v = vocab.get_vocabulary()
  assert v.vocab_size == vocab.SYNTHETIC_VOCAB_SIZE == 2100
  assert v.extra_ids == 100
  assert (v.pad_id, v.eos_id, v.unk_id) == (0, 1, 2)
  assert vocab.sentinel_id(v, 0) == 2099 and vocab.sentinel_id(v, 99) == 2000
  with pytest.raises(ValueError, match='out of range'):
    vocab.sentinel_id(v, 100)
  assert vocab.get_vocabulary() is v  # cached


def test_tf_text_ops_match_python_sentencepiece():
  v = vocab.get_vocabulary()
  sp = spm.SentencePieceProcessor(model_file=vocab.DEFAULT_VOCAB_PATH)
  for text in TEXTS:
    ids_py = v.encode(text)
    ids_tf = v.encode_tf(tf.constant(text)).numpy().tolist()
    assert ids_py == ids_tf == sp.encode(text), text
    assert v.unk_id not in ids_py, text
    assert v.decode(ids_py) == text
    assert v.decode_tf(tf.constant(ids_tf)).numpy().decode() == text


def test_sentinels_in_text_round_trip():
  v = vocab.get_vocabulary()
  ids = v.encode('photo on a <extra_id_0> background <extra_id_1>')
  assert ids.count(2099) == 1 and ids.count(2098) == 1
  assert v.decode(ids) == 'photo on a <extra_id_0> background <extra_id_1>'


def test_every_synthetic_word_is_known():
  v = vocab.get_vocabulary()
  for lang in synthetic_words.LANGS:
    t = synthetic_words.table(lang)
    for word in [*t.colour.values(), *t.shape.values(), *t.numbers, t.yes, t.no]:
      ids = v.encode(word)
      assert v.unk_id not in ids and len(ids) <= 3, (lang, word, ids)


def test_user_path_and_extra_ids(tmp_path):
  path = tmp_path / 'copy.model'
  shutil.copy(vocab.DEFAULT_VOCAB_PATH, path)
  v = vocab.get_vocabulary(str(path), extra_ids=10)
  assert v.vocab_size == 2010
  assert v.encode('rouge') == vocab.get_vocabulary().encode('rouge')


def test_missing_file_names_the_path(tmp_path):
  missing = str(tmp_path / 'nowhere' / 'sentencepiece.model')
  with pytest.raises(FileNotFoundError, match='nowhere/sentencepiece.model'):
    vocab.get_vocabulary(missing)


def _truncated(data):
  return data[: len(data) // 3]


@pytest.mark.parametrize(
  'damage',
  [lambda d: b'', _truncated, lambda d: b'not a sentencepiece model' * 4, lambda d: d[::-1]],
  ids=['empty', 'truncated', 'text', 'reversed'],
)
def test_corrupt_model_is_a_file_format_error_naming_it(tmp_path, damage):
  with open(vocab.DEFAULT_VOCAB_PATH, 'rb') as f:
    data = f.read()
  path = tmp_path / 'sentencepiece.model'
  path.write_bytes(damage(data))
  with pytest.raises(errors.FileFormatError) as info:
    vocab.get_vocabulary(str(path))
  assert str(path) in str(info.value)


def test_build_is_deterministic_and_matches_shipped_model():
  with open(vocab.DEFAULT_VOCAB_PATH, 'rb') as f:
    shipped = f.read()
  assert build_vocab.train() == shipped


@pytest.mark.parametrize('side', [32, 48])
def test_detection_coordinates_of_the_cpu_image_sizes_are_single_pieces(side):
  """Numbers are not split into digits: a box of the 32 / 48 px tasks is 4 pieces + its label."""
  from pali_pax.tasks import metrics_detection

  v = vocab.get_vocabulary()
  bins = metrics_detection.NUM_BOX_BINS
  # px = side (999: a box touching the far edge) is rare and may take several pieces.
  for px in range(side):
    coordinate = str(bins * px // side)
    assert len(v.encode(coordinate)) == 1, coordinate
  assert v.decode(v.encode('93 281 750 999')) == '93 281 750 999'


def _sentencepiece_ops(graph_def) -> int:
  nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
  return sum(n.op == 'SentencepieceOp' for n in nodes)


def test_encode_tf_shares_one_tokenizer_per_graph_with_seqios_ids():
  v = vocab.get_vocabulary()

  @tf.function(autograph=False)
  def three_calls(texts):
    return [vocab.encode_tf(v, texts).to_tensor(), vocab.encode_tf(v, texts[::-1]).to_tensor()]

  texts = tf.constant(TEXTS)
  got = three_calls(texts)
  want = v.encode_tf(texts).to_tensor()  # eager: seqio's own tokenizer
  assert got[0].numpy().tolist() == want.numpy().tolist()
  assert got[1].numpy().tolist() == v.encode_tf(texts[::-1]).to_tensor().numpy().tolist()
  graph = three_calls.get_concrete_function(texts).graph.as_graph_def()
  assert _sentencepiece_ops(graph) == 1

  @tf.function(autograph=False)
  def seqios(texts):  # what each call of seqio's encode_tf adds: a tokenizer op of its own
    return [v.encode_tf(texts).to_tensor(), v.encode_tf(texts).to_tensor()]

  assert _sentencepiece_ops(seqios.get_concrete_function(texts).graph.as_graph_def()) == 2


def test_encode_tf_keeps_no_traced_graph_alive():
  # An eval input is rebuilt every round: its graphs must go with it.
  v = vocab.get_vocabulary()
  fn = tf.function(lambda t: vocab.encode_tf(v, t).to_tensor(), autograph=False)
  graph = weakref.ref(fn.get_concrete_function(tf.TensorSpec([None], tf.string)).graph)
  del fn
  gc.collect()
  assert graph() is None
