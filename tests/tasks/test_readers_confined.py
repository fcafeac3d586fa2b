"""Confined data: annotation paths stay in the data folder, UTF-8 only, bad images counted."""

import io
import json

import pytest
import seqio
from PIL import Image

from pali_pax.core import errors
from pali_pax.tasks import drop_counts, finetune_tasks, image_ops, readers


def _png(path, size=(8, 6)):
  path.parent.mkdir(parents=True, exist_ok=True)
  buf = io.BytesIO()
  Image.new('RGB', size, (10, 200, 30)).save(buf, 'PNG')
  path.write_bytes(buf.getvalue())
  return buf.getvalue()


def _coco(tmp_path, file_names, name='captions.json'):
  ann = {
    'images': [{'id': i, 'file_name': f} for i, f in enumerate(file_names)],
    'annotations': [{'image_id': i, 'caption': f'c{i}'} for i in range(len(file_names))],
  }
  path = tmp_path / name
  path.write_text(json.dumps(ann))
  return str(path)


def _images(source, split):
  return [ex['image'] for ex in source.get_dataset(split, shuffle=False).as_numpy_iterator()]


@pytest.fixture
def layout(tmp_path):
  """data/images/ok.png inside the data folder, secret.png outside it."""
  inside = _png(tmp_path / 'data' / 'images' / 'ok.png')
  outside = _png(tmp_path / 'secret.png', size=(3, 3))
  return tmp_path, inside, outside


@pytest.mark.parametrize('escape', ['../../secret.png', 'sub/../../../secret.png', 'ABS'])
def test_coco_paths_outside_the_data_dir_are_refused(layout, escape):
  tmp_path, _, outside = layout
  image_dir = str(tmp_path / 'data' / 'images')
  escape = str(tmp_path / 'secret.png') if escape == 'ABS' else escape
  ann = _coco(tmp_path, ['ok.png', escape])
  src = readers.coco_captions_source({'train': (ann, image_dir)})
  with pytest.raises(readers.DataFormatError, match=r"captions.json' images\[1\]\['file_name'\]"):
    src.get_dataset('train', shuffle=False)
  with pytest.raises(errors.PaliPaxError, match='outside the data folder'):
    src.get_dataset('train', shuffle=False)
  # The explicit option reads it (the file outside is what comes back).
  allowed = readers.coco_captions_source({'train': (ann, image_dir)}, allow_outside_data_dir=True)
  assert _images(allowed, 'train')[1] == outside


def test_paths_that_stay_inside_are_fine(layout):
  tmp_path, inside, _ = layout
  ann = _coco(tmp_path, ['ok.png', 'sub/../ok.png', './ok.png'])
  src = readers.coco_captions_source({'train': (ann, str(tmp_path / 'data' / 'images'))})
  assert _images(src, 'train') == [inside] * 3


def test_karpathy_textvqa_xm3600_vqa_are_confined(layout):
  tmp_path, _, _ = layout
  data = tmp_path / 'data'
  karpathy = tmp_path / 'dataset_coco.json'
  karpathy.write_text(
    json.dumps(
      {
        'images': [
          {
            'filepath': '..',
            'filename': 'secret.png',
            'split': 'train',
            'cocoid': 1,
            'sentences': [{'raw': 'x'}],
          },
        ]
      }
    )
  )
  src = readers.coco_captions_source({'train': (str(karpathy), str(data))})
  with pytest.raises(readers.DataFormatError, match=r"dataset_coco.json' images\[0\]"):
    src.get_dataset('train', shuffle=False)

  textvqa = tmp_path / 'textvqa.json'
  textvqa.write_text(
    json.dumps({'data': [{'image_id': '../../secret', 'question': 'q', 'question_id': 4}]})
  )
  src = readers.textvqa_source({'train': (str(textvqa), str(data / 'images'))}, image_ext='.png')
  with pytest.raises(readers.DataFormatError, match=r"textvqa.json' data\[0\]\['image_id'\]"):
    src.get_dataset('train', shuffle=False)

  xm = tmp_path / 'captions.jsonl'
  xm.write_text(
    json.dumps({'image/key': 'ok', 'en': {'caption': ['a']}})
    + '\n'
    + json.dumps({'image/key': '/etc/passwd', 'en': {'caption': ['b']}})
    + '\n'
  )
  src = readers.xm3600_source(str(xm), str(data / 'images'), image_ext='.png')
  with pytest.raises(readers.DataFormatError, match=r"captions.jsonl' line 2 \['image/key'\]"):
    src.get_dataset('test', shuffle=False)

  questions = tmp_path / 'q.json'
  questions.write_text(
    json.dumps(
      {
        'data_subtype': '../../x',
        'questions': [{'image_id': 1, 'question': 'q?', 'question_id': 5}],
      }
    )
  )
  src = readers.vqav2_source({'test': (str(questions), None, str(data / 'images'))})
  with pytest.raises(readers.DataFormatError, match=r"q.json' questions\[0\]"):
    src.get_dataset('test', shuffle=False)


def test_non_utf8_annotations_name_the_file(tmp_path):
  (tmp_path / 'img').mkdir()
  bad = tmp_path / 'latin1.json'
  bad.write_bytes('{"images": [], "annotations": [{"caption": "caf\u00e9"}]}'.encode('latin-1'))
  src = readers.coco_captions_source({'train': (str(bad), str(tmp_path / 'img'))})
  with pytest.raises(readers.DataFormatError, match=r'latin1.json.*not UTF-8: line 1, byte offset'):
    src.get_dataset('train', shuffle=False)
  jsonl = tmp_path / 'xm.jsonl'
  jsonl.write_bytes(b'{"image/key": "a"}\n{"image/key": "\xff"}\n')
  with pytest.raises(readers.DataFormatError, match=r'xm.jsonl.*not UTF-8: line 2'):
    readers.xm3600_languages(str(jsonl))
  # A JSON escape of a lone surrogate parses, but is not text: named too.
  surrogate = _coco(tmp_path, ['x.png'], name='surrogate.json')
  with open(surrogate, 'w') as f:
    f.write('{"images": [{"id": 1, "file_name": "a\\ud800.png"}], "annotations": []}')
  src = readers.coco_captions_source({'train': (surrogate, str(tmp_path / 'img'))})
  with pytest.raises(
    readers.DataFormatError, match=r"surrogate.json' images\[0\].*not valid Unicode"
  ):
    src.get_dataset('train', shuffle=False)


def test_deeply_nested_or_huge_numbers_are_format_errors(tmp_path):
  (tmp_path / 'img').mkdir()
  deep = tmp_path / 'deep.json'
  deep.write_text('[' * 100_000 + ']' * 100_000)
  huge = tmp_path / 'huge.json'
  huge.write_text('{"images": [{"id": ' + '9' * 5000 + '}]}')
  for path in (deep, huge):
    src = readers.coco_captions_source({'train': (str(path), str(tmp_path / 'img'))})
    with pytest.raises(readers.DataFormatError, match=path.name):
      src.get_dataset('train', shuffle=False)


def test_missing_folder_is_a_missing_file_error(tmp_path):
  src = readers.coco_captions_source({'train': (str(tmp_path / 'nope.json'), str(tmp_path))})
  with pytest.raises(errors.MissingFileError, match='nope.json'):
    src.get_dataset('train', shuffle=False)
  with pytest.raises(errors.ConfigError, match="unknown split 'test'"):
    src.get_dataset('test', shuffle=False)


def test_empty_image_on_an_image_task_is_dropped_and_counted(tmp_path):
  """A 0-byte COCO image used to become a text-only example; now dropped, reason 'empty'."""
  coco = tmp_path / 'coco'
  _png(coco / 'train2014' / 'a.png')
  (coco / 'train2014' / 'empty.png').write_bytes(b'')
  (coco / 'annotations').mkdir()
  _coco(coco / 'annotations', ['a.png', 'empty.png'], name='captions_train2014.json')
  (coco / 'val2014').mkdir()
  (name,) = finetune_tasks.register_finetune_tasks(coco_dir=str(coco), image_size=8, suffix='_e')
  drop_counts.reset()
  task = seqio.get_mixture_or_task(name)
  ds = task.get_dataset(None, split='train', shuffle=False, num_epochs=1)
  rows = list(ds.as_numpy_iterator())
  assert [r['image_id'] for r in rows] == [b'0'] and rows[0]['has_image'] == 1.0
  assert image_ops.dropped_images(name, 'empty') == 1
  assert image_ops.dropped_images(name) == 1
  assert drop_counts.counts()[(name, 'empty')] == 1


def test_tfrecord_invalid_utf8_is_counted_not_replaced(tmp_path):
  path = str(tmp_path / 'x.tfrecord')
  readers.write_tfrecord(
    path,
    [
      {'texts': ['ok \ufffd'], 'question': 'q'},  # a real U+FFFD is valid text
      {'texts': [b'bad \xff'], 'question': 'q'},
      {'texts': ['fine'], 'question': b'\xc3', 'lang': 'en'},
      {'texts': ['kept'], 'lang': b'\xe9'},
    ],
  )
  drop_counts.reset()
  src = readers.tfrecord_source(path, counter='utf8_test')
  rows = list(src.get_dataset('train', shuffle=False).as_numpy_iterator())
  assert [list(r['texts']) for r in rows] == [['ok \ufffd'.encode()]]
  assert drop_counts.count('utf8_test', 'invalid_utf8') == 3
