"""Readers over JSON / JSONL files (COCO, Karpathy, XM3600, VQAv2, TextVQA) round-trip."""

import json

import numpy as np
import pytest
import seqio
import tensorflow as tf
from PIL import Image

from pali_pax.tasks import finetune_tasks, metrics, readers


def _image(path, fmt='JPEG', color=(200, 30, 60)):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new('RGB', (8, 6), color).save(path, format=fmt)
  return path.read_bytes()


def _examples(source, split, shuffle=False, seed=None):
  ds = source.get_dataset(split=split, shuffle=shuffle, seed=seed)
  assert set(ds.element_spec) == set(readers.RAW_FEATURES)
  for key, (dtype, shape) in readers.RAW_FEATURES.items():
    assert ds.element_spec[key].dtype == dtype
    assert ds.element_spec[key].shape.as_list() == shape
  out = []
  for ex in ds.as_numpy_iterator():
    row = {k: v.decode() if k != 'image' else v for k, v in ex.items() if k != 'texts'}
    row['texts'] = [t.decode() for t in ex['texts']]
    out.append(row)
  return out


def test_coco_official_round_trip(tmp_path):
  img_dir = tmp_path / 'val2014'
  names = ['COCO_val2014_000000000042.jpg', 'COCO_val2014_000000000007.png']
  blobs = [_image(img_dir / names[0]), _image(img_dir / names[1], 'PNG', (1, 2, 3))]
  ann = {
    'images': [{'id': 42, 'file_name': names[0]}, {'id': 7, 'file_name': names[1]}],
    'annotations': [
      {'image_id': 42, 'id': 1, 'caption': 'A red square. '},
      {'image_id': 7, 'id': 2, 'caption': 'tiny dark image'},
      {'image_id': 42, 'id': 3, 'caption': 'Ein rotes Quadrat'},
    ],
  }
  path = tmp_path / 'captions_val2014.json'
  path.write_text(json.dumps(ann))
  src = readers.coco_captions_source({'validation': (str(path), str(img_dir))})
  got = _examples(src, 'validation')
  assert got == [
    {
      'image': blobs[0],
      'image_id': '42',
      'example_id': '42',
      'lang': 'en',
      'question': '',
      'texts': ['A red square.', 'Ein rotes Quadrat'],
    },
    {
      'image': blobs[1],
      'image_id': '7',
      'example_id': '7',
      'lang': 'en',
      'question': '',
      'texts': ['tiny dark image'],
    },
  ]
  # The bytes are the stored JPEG, decodable as such.
  assert tf.io.decode_jpeg(got[0]['image']).shape == (6, 8, 3)
  shuffled = _examples(src, 'validation', shuffle=True, seed=3)
  assert sorted(e['image_id'] for e in shuffled) == ['42', '7']
  assert shuffled == _examples(src, 'validation', shuffle=True, seed=3)


def test_coco_karpathy_round_trip(tmp_path):
  blob_train = _image(tmp_path / 'train2014' / 'COCO_train2014_000000000001.jpg')
  blob_val = _image(tmp_path / 'val2014' / 'COCO_val2014_000000000002.jpg', color=(0, 9, 9))
  data = {
    'dataset': 'coco',
    'images': [
      {
        'filepath': 'train2014',
        'filename': 'COCO_train2014_000000000001.jpg',
        'split': 'train',
        'imgid': 0,
        'cocoid': 1,
        'sentences': [{'raw': 'one', 'tokens': ['one']}, {'raw': 'uno ', 'tokens': ['uno']}],
      },
      {
        'filepath': 'val2014',
        'filename': 'COCO_val2014_000000000002.jpg',
        'split': 'restval',
        'imgid': 1,
        'cocoid': 2,
        'sentences': [{'raw': 'two', 'tokens': ['two']}],
      },
      {
        'filepath': 'val2014',
        'filename': 'COCO_val2014_000000000003.jpg',
        'split': 'test',
        'imgid': 2,
        'cocoid': 3,
        'sentences': [{'raw': 'three', 'tokens': ['three']}],
      },
    ],
  }
  path = tmp_path / 'dataset_coco.json'
  path.write_text(json.dumps(data))
  src = readers.coco_captions_source({'train': (str(path), str(tmp_path))})
  got = _examples(src, 'train')  # train + restval; the test image (absent file) is skipped
  assert [(e['image'], e['image_id'], e['texts']) for e in got] == [
    (blob_train, '1', ['one', 'uno']),
    (blob_val, '2', ['two']),
  ]


def test_xm3600_per_language_and_filter(tmp_path):
  blob_a = _image(tmp_path / 'img' / 'aa01.jpg')
  blob_b = _image(tmp_path / 'img' / 'bb02.jpg', color=(5, 5, 5))
  rows = [
    {
      'image/key': 'aa01',
      'en': {'caption': ['a cat', 'cat'], 'caption/tokenized': ['a cat']},
      'de': {'caption': ['eine Katze']},
    },
    {'image/key': 'bb02', 'en': {'caption': ['a dog']}, 'zh': {'caption': ['一只狗']}},
  ]
  path = tmp_path / 'captions.jsonl'
  path.write_text('\n'.join(json.dumps(r, ensure_ascii=False) for r in rows) + '\n')
  assert readers.xm3600_languages(str(path)) == ['de', 'en', 'zh']
  got = _examples(readers.xm3600_source(str(path), str(tmp_path / 'img')), 'test')
  assert [(e['example_id'], e['lang'], e['texts']) for e in got] == [
    ('aa01/de', 'de', ['eine Katze']),
    ('aa01/en', 'en', ['a cat', 'cat']),
    ('bb02/en', 'en', ['a dog']),
    ('bb02/zh', 'zh', ['一只狗']),
  ]
  assert got[0]['image'] == blob_a and got[3]['image'] == blob_b and got[3]['image_id'] == 'bb02'
  only = readers.xm3600_source(str(path), str(tmp_path / 'img'), languages=['zh', 'de'])
  assert [e['example_id'] for e in _examples(only, 'test')] == ['bb02/zh', 'aa01/de']
  bad = readers.xm3600_source(str(path), str(tmp_path / 'img'), languages=['en', 'xx'])
  with pytest.raises(ValueError, match=r"\['xx'\].*present: \['de', 'en', 'zh'\]"):
    bad.get_dataset('test', shuffle=False)


def test_xm3600_tokenized_references_where_present(tmp_path):
  _image(tmp_path / 'images' / 'k1.jpg')
  row = {
    'image/key': 'k1',
    'zh': {'caption': ['一只黑猫。'], 'caption/tokenized': ['一只 黑猫 。']},
    'de': {'caption': ['Eine Katze.']},  # no tokenized captions: the raw ones
  }
  path = tmp_path / 'captions.jsonl'
  path.write_text(json.dumps(row, ensure_ascii=False) + '\n')
  fields = readers.XM3600_REFERENCE_FIELDS
  assert readers.xm3600_languages(str(path), fields) == ['de', 'zh']
  got = _examples(
    readers.xm3600_source(str(path), str(tmp_path / 'images'), None, 'test', fields), 'test'
  )
  assert [(e['lang'], e['texts']) for e in got] == [
    ('de', ['Eine Katze.']),
    ('zh', ['一只 黑猫 。']),
  ]
  # The registered tasks read them, and CIDEr tokenizes them like the predictions.
  finetune_tasks.register_finetune_tasks(xm3600_dir=str(tmp_path), image_size=8, suffix='_tok')
  task = seqio.get_mixture_or_task('pali_xm3600_zh_tok')
  ex = next(task.get_dataset(None, split='test', shuffle=False).as_numpy_iterator())
  refs = task.postprocess_fn(b'', example=ex, is_target=True)
  assert refs == ['一只 黑猫 。']
  assert metrics.cider_tokenize(refs[0]) == metrics.cider_tokenize('一只黑猫') == '一 只 黑 猫'


def _vqa_files(tmp_path, subtype='val2014'):
  img_dir = tmp_path / subtype.replace('test-dev2015', 'test2015')
  prefix = subtype.replace('test-dev2015', 'test2015')
  blob = _image(img_dir / f'COCO_{prefix}_000000000009.jpg')
  questions = {
    'data_subtype': subtype,
    'questions': [
      {'image_id': 9, 'question': 'What color?', 'question_id': 90},
      {'image_id': 9, 'question': 'How many?', 'question_id': 91},
    ],
  }
  answers90 = ['red', 'red', 'maroon', 'red', 'pink', 'red', 'red', 'dark red', 'red', 'red']
  annotations = {
    'annotations': [
      {
        'question_id': qid,
        'image_id': 9,
        'multiple_choice_answer': ans[0],
        'answers': [
          {'answer': a, 'answer_confidence': 'yes', 'answer_id': i + 1} for i, a in enumerate(ans)
        ],
      }
      for qid, ans in ((91, ['2'] * 9 + ['3']), (90, answers90))
    ]
  }
  q_path, a_path = tmp_path / 'q.json', tmp_path / 'a.json'
  q_path.write_text(json.dumps(questions))
  a_path.write_text(json.dumps(annotations))
  return q_path, a_path, img_dir, blob, answers90


def test_vqav2_round_trip_keeps_all_answers(tmp_path):
  q_path, a_path, img_dir, blob, answers90 = _vqa_files(tmp_path)
  src = readers.vqav2_source({'validation': (str(q_path), str(a_path), str(img_dir))})
  got = _examples(src, 'validation')
  assert got == [
    {
      'image': blob,
      'image_id': '9',
      'example_id': '90',
      'lang': 'en',
      'question': 'What color?',
      'texts': answers90,
    },
    {
      'image': blob,
      'image_id': '9',
      'example_id': '91',
      'lang': 'en',
      'question': 'How many?',
      'texts': ['2'] * 9 + ['3'],
    },
  ]


def test_vqav2_test_dev_without_answers(tmp_path):
  q_path, _, img_dir, blob, _ = _vqa_files(tmp_path, 'test-dev2015')
  src = readers.vqav2_source({'test': (str(q_path), None, str(img_dir))})
  got = _examples(src, 'test')
  assert [(e['image'], e['texts']) for e in got] == [(blob, []), (blob, [])]


def test_textvqa_round_trip(tmp_path):
  blob = _image(tmp_path / 'train_images' / 'abc123.jpg')
  answers = ['stop', 'stop', 'stop sign', 'stop', 'stop', 'stop', 'stop', 'stop', 'stop', 'stop']
  data = {
    'dataset_name': 'textvqa',
    'data': [
      {
        'image_id': 'abc123',
        'question': 'what does the sign say?',
        'question_id': 5,
        'answers': answers,
        'ocr_tokens': ['STOP'],
        'image_classes': ['sign'],
      },
      {'image_id': 'abc123', 'question': 'what color?', 'question_id': 6},
    ],
  }
  path = tmp_path / 'TextVQA_0.5.1_val.json'
  path.write_text(json.dumps(data))
  src = readers.textvqa_source({'validation': (str(path), str(tmp_path / 'train_images'))})
  got = _examples(src, 'validation')
  assert got == [
    {
      'image': blob,
      'image_id': 'abc123',
      'example_id': '5',
      'lang': 'en',
      'question': 'what does the sign say?',
      'texts': answers,
    },
    {
      'image': blob,
      'image_id': 'abc123',
      'example_id': '6',
      'lang': 'en',
      'question': 'what color?',
      'texts': [],
    },
  ]


def test_errors_name_file_and_problem(tmp_path):
  (tmp_path / 'img').mkdir()
  missing = readers.coco_captions_source({'train': (str(tmp_path / 'nope.json'), str(tmp_path))})
  with pytest.raises(FileNotFoundError, match='nope.json'):
    missing.get_dataset('train', shuffle=False)

  broken = tmp_path / 'broken.json'
  broken.write_text('{"images": [')
  src = readers.coco_captions_source({'train': (str(broken), str(tmp_path))})
  with pytest.raises(readers.DataFormatError, match='broken.json.*not valid JSON'):
    src.get_dataset('train', shuffle=False)

  no_caption = tmp_path / 'no_caption.json'
  no_caption.write_text(json.dumps({'images': [], 'annotations': [{'image_id': 1}]}))
  src = readers.coco_captions_source({'train': (str(no_caption), str(tmp_path))})
  with pytest.raises(
    readers.DataFormatError, match=r"no_caption.json.*annotations\[0\].*'caption'"
  ):
    src.get_dataset('train', shuffle=False)

  src = readers.coco_captions_source({'train': (str(no_caption), str(tmp_path / 'absent'))})
  with pytest.raises(FileNotFoundError, match='absent'):
    src.get_dataset('train', shuffle=False)

  bad_lines = tmp_path / 'xm.jsonl'
  bad_lines.write_text('{"image/key": "a"}\nnot json\n')
  with pytest.raises(readers.DataFormatError, match='xm.jsonl.*line 2'):
    readers.xm3600_source(str(bad_lines), str(tmp_path / 'img')).get_dataset('test', False)

  q_path, a_path, img_dir, _, _ = _vqa_files(tmp_path)
  a_path.write_text(json.dumps({'annotations': []}))
  src = readers.vqav2_source({'validation': (str(q_path), str(a_path), str(img_dir))})
  with pytest.raises(readers.DataFormatError, match='question_id 90.*a.json'):
    src.get_dataset('validation', shuffle=False)

  # A missing image file is reported with its entry when the split is loaded.
  ok = tmp_path / 'ok.json'
  ok.write_text(json.dumps({'images': [{'id': 1, 'file_name': 'gone.jpg'}], 'annotations': []}))
  src = readers.coco_captions_source({'train': (str(ok), str(tmp_path))})
  with pytest.raises(readers.DataFormatError, match=r"1 image.*ok.json' images\[0\].*gone.jpg"):
    src.get_dataset('train', False)


def test_records_to_dataset_text_only_and_empty():
  recs = [readers.Record('', 'i', 'e', 'fr', 'q?', ('x', 'y'))]
  (ex,) = list(readers.records_to_dataset(recs).as_numpy_iterator())
  assert ex['image'] == b'' and list(ex['texts']) == [b'x', b'y'] and ex['lang'] == b'fr'
  assert list(readers.records_to_dataset([]).as_numpy_iterator()) == []
  np.testing.assert_equal(readers.records_to_dataset(recs).element_spec['texts'].shape, [None])
