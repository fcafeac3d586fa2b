"""Seeded, bounded fuzz of the dataset readers (shared parts: tests/fuzzing.py).

readers     120 mutated COCO / Karpathy / VQAv2 / TextVQA / XM3600 files + 20 TFRecords
"""

import io
import json

import numpy as np
from PIL import Image

from pali_pax.tasks import drop_counts, readers
from tests import fuzzing


def _png(path):
  buf = io.BytesIO()
  Image.new('RGB', (4, 3), (9, 90, 200)).save(buf, 'PNG')
  path.write_bytes(buf.getvalue())


def _reader_bases():
  """name -> (files {file name: document}, build(folder) -> (source, split))."""
  coco = {
    'images': [{'id': 1, 'file_name': 'a.png'}, {'id': 2, 'file_name': 'b.png'}],
    'annotations': [{'image_id': 1, 'caption': 'a cat'}, {'image_id': 2, 'caption': 'a dog'}],
  }
  karpathy = {
    'images': [
      {'filepath': '', 'filename': 'a.png', 'split': 'train', 'cocoid': 1,
       'sentences': [{'raw': 'a cat'}, {'raw': 'cat'}]},
    ]
  }  # fmt: skip
  questions = {
    'data_subtype': 'val2014',
    'questions': [{'image_id': 1, 'question': 'what?', 'question_id': 10}],
  }
  answers = {'annotations': [{'question_id': 10, 'answers': [{'answer': 'cat'}] * 3}]}
  textvqa = {'data': [{'image_id': 'a', 'question': 'what?', 'question_id': 3, 'answers': ['x']}]}
  xm = [{'image/key': 'a', 'en': {'caption': ['a cat']}, 'de': {'caption': ['eine Katze']}}]
  return {
    'coco': ({'ann.json': coco}, lambda d: (readers.coco_captions_source(
      {'train': (f'{d}/ann.json', f'{d}/img')}), 'train')),
    'karpathy': ({'ann.json': karpathy}, lambda d: (readers.coco_captions_source(
      {'train': (f'{d}/ann.json', f'{d}/img')}), 'train')),
    'vqa_questions': ({'q.json': questions, 'a.json': answers}, lambda d: (readers.vqav2_source(
      {'val': (f'{d}/q.json', f'{d}/a.json', f'{d}/img')}, 'COCO_{subtype}_{image_id}.png'),
      'val')),
    'textvqa': ({'ann.json': textvqa}, lambda d: (readers.textvqa_source(
      {'train': (f'{d}/ann.json', f'{d}/img')}, image_ext='.png'), 'train')),
    'xm3600': ({'captions.jsonl': xm}, lambda d: (readers.xm3600_source(
      f'{d}/captions.jsonl', f'{d}/img', image_ext='.png'), 'test')),
  }  # fmt: skip


def test_fuzz_readers(tmp_path):
  rng = np.random.default_rng(fuzzing.SEED)
  bases = _reader_bases()
  failures, messages, ok = [], [], 0
  for i in range(120):
    name = list(bases)[i % len(bases)]
    files, build = bases[name]
    folder = tmp_path / f'r{i:03d}'
    (folder / 'img').mkdir(parents=True)
    for image in ('a.png', 'b.png', 'COCO_val2014_1.png'):
      _png(folder / 'img' / image)
    _png(tmp_path / 'outside.png')
    target = list(files)[rng.integers(len(files))]
    for fname, doc in files.items():
      if fname == target and rng.random() < 0.6:
        data = fuzzing.serialise(fname, fuzzing.mutate_tree(doc, rng))
      elif fname == target:
        data = fuzzing.mutate_bytes(fuzzing.serialise(fname, doc), rng)
      else:
        data = fuzzing.serialise(fname, doc)
      (folder / fname).write_bytes(data)
    case = f'readers[{i}] {name} ({target})'
    try:
      source, split = build(str(folder))
      for _ in source.get_dataset(split, shuffle=False).as_numpy_iterator():
        pass
      ok += 1
    except Exception as e:  # noqa: BLE001  (every failure is inspected)
      fuzzing.fails(failures, case, e, list(files))
      messages.append(str(e))
  assert not failures, '\n'.join(failures)
  # The mutations reach the checks that matter (not only JSON syntax).
  assert ok + len(messages) == 120 and ok >= 5, ok
  for kind in ('outside the data folder', 'not UTF-8', 'not valid JSON', 'should be'):
    assert any(kind in m for m in messages), kind


def test_fuzz_tfrecord_text_is_counted(tmp_path):
  """Random bytes in every text field: invalid UTF-8 examples are dropped and counted exactly."""
  rng = np.random.default_rng(fuzzing.SEED + 1)
  alphabet = [b'a', b' ', 'é'.encode(), '中'.encode(), b'\xff', b'\xc3', b'\x80', b'\x00']
  for i in range(20):
    examples, invalid = [], 0
    for _ in range(8):
      fields = {
        k: b''.join(alphabet[j] for j in rng.integers(len(alphabet), size=rng.integers(0, 6)))
        for k in ('question', 'lang', 'image_id', 'example_id')
      }
      texts = [
        b''.join(alphabet[j] for j in rng.integers(len(alphabet), size=rng.integers(0, 6)))
        for _ in range(rng.integers(0, 3))
      ]
      examples.append({**fields, 'texts': texts, 'image': b''})
      try:
        for v in [*fields.values(), *texts]:
          v.decode('utf-8')
      except UnicodeDecodeError:
        invalid += 1
    path = str(tmp_path / f't{i}.tfrecord')
    readers.write_tfrecord(path, examples)
    counter = f'fuzz_tfrecord_{i}'
    rows = list(readers.tfrecord_source(path, counter=counter).get_dataset('train', False))
    assert len(rows) == 8 - invalid, f'tfrecord[{i}]'
    assert drop_counts.count(counter, 'invalid_utf8') == invalid, f'tfrecord[{i}]'


def test_fuzz_is_seeded():
  """The same seed draws the same cases (what makes a fuzz failure reproducible)."""
  a, b = np.random.default_rng(fuzzing.SEED), np.random.default_rng(fuzzing.SEED)
  doc = {'images': [{'id': 1, 'file_name': 'a.png'}]}
  assert [json.dumps(fuzzing.mutate_tree(doc, a)) for _ in range(20)] == [
    json.dumps(fuzzing.mutate_tree(doc, b)) for _ in range(20)
  ]
