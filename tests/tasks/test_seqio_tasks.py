"""seqio registration: synthetic tasks + mixture, fine-tuning tasks on tiny real-format files, CLI."""

import json

import numpy as np
import pytest
import seqio
from PIL import Image

from pali_pax.tasks import finetune_tasks, image_ops, metrics, synthetic, synthetic_tasks

SUFFIX = '_test32'
LENGTHS = {'inputs': 48, 'targets': 40}


@pytest.fixture(scope='module')
def mixture():
  return register_mixture()


def register_mixture() -> str:
  """The 32 px synthetic tasks under SUFFIX (32 validation examples each); their mixture."""
  return synthetic_tasks.register_synthetic_tasks(
    image_size=32, suffix=SUFFIX, num_validation_examples=32
  )


def test_default_names_registered_at_import():
  for task in (
    'caption',
    'vqa',
    'xvqa',
    'ocr',
    'vqg',
    'object_vqa',
    'detection',
    'split_cap',
    'span_corruption',
  ):
    assert f'pali_synthetic_{task}' in seqio.TaskRegistry.names()
  assert 'pali_synthetic_mixture' in seqio.MixtureRegistry.names()


def test_metric_fns_come_from_the_metric_table(mixture):
  for task in synthetic.TASKS:
    registered = seqio.get_mixture_or_task(synthetic_tasks.task_name(task, SUFFIX))
    assert list(registered.metric_fns) == metrics.metrics_for(task), task


def test_registration_is_idempotent_and_rates_configurable(mixture):
  assert (
    synthetic_tasks.register_synthetic_tasks(
      image_size=32, suffix=SUFFIX, num_validation_examples=32
    )
    == mixture
  )
  with pytest.raises(ValueError, match='already registered'):
    synthetic_tasks.register_synthetic_tasks(image_size=64, suffix=SUFFIX)
  with pytest.raises(ValueError, match='valid tasks'):
    synthetic_tasks.register_synthetic_tasks(suffix='_bad', rates={'chess': 1.0})
  name = synthetic_tasks.register_synthetic_tasks(
    image_size=32, suffix='_test_rates', rates={'vqa': 5.0, 'span_corruption': 0.0}
  )
  mix = seqio.get_mixture_or_task(name)
  rates = {t.name: mix.get_rate(t) for t in mix.tasks}
  assert rates['pali_synthetic_vqa_test_rates'] == 5.0
  assert 'pali_synthetic_span_corruption_test_rates' not in rates
  assert len(rates) == 8


def test_mixture_examples_decode_to_prompts_in_several_languages(mixture):
  ds = seqio.get_mixture_or_task(mixture).get_dataset(LENGTHS, split='train', shuffle=True, seed=3)
  vocab = seqio.get_mixture_or_task(mixture).output_features['inputs'].vocabulary
  langs, text_only = set(), 0
  for ex in ds.take(40).as_numpy_iterator():
    assert set(ex) == {'inputs', 'targets', 'image', 'has_image'}
    assert ex['image'].shape == (32, 32, 3) and ex['image'].dtype == np.float32
    assert ex['inputs'].dtype == np.int32 and ex['inputs'][-1] == 1 and ex['targets'][-1] == 1
    assert len(ex['inputs']) <= 48 and len(ex['targets']) <= 40
    prompt = vocab.decode(ex['inputs'].tolist())
    if ex['has_image'] == 0:
      text_only += 1
      assert not ex['image'].any() and '<extra_id_0>' in prompt
      continue
    assert -1.0 <= ex['image'].min() and ex['image'].max() <= 1.0
    for head in (
      'Generate caption in ',
      'Answer in ',
      'Generate a question in ',
      'Detect all objects in ',
      'Generate the alt_text in ',
    ):
      if prompt.startswith(head):
        langs.add(prompt[len(head) : len(head) + 2])
    assert prompt.startswith(('Generate', 'Answer', 'Detect')), prompt
  assert len(langs) >= 4, langs


def test_validation_task_features_and_raw_fields(mixture):
  del mixture
  ds = seqio.get_mixture_or_task(f'pali_synthetic_vqa{SUFFIX}').get_dataset(
    LENGTHS, split='validation', shuffle=False
  )
  examples = list(ds.as_numpy_iterator())
  assert len(examples) == 32
  ex = examples[0]
  assert ex['has_image'] == 1.0 and ex['image'].shape == (32, 32, 3)
  vocab = (
    seqio.get_mixture_or_task(f'pali_synthetic_vqa{SUFFIX}').output_features['targets'].vocabulary
  )
  assert vocab.decode(ex['targets'].tolist()) == ex['targets_pretokenized'].decode()
  assert ex['inputs_pretokenized'].decode().startswith('Answer in ')
  train = next(
    seqio.get_mixture_or_task(f'pali_synthetic_vqa{SUFFIX}')
    .get_dataset(LENGTHS, split='train', shuffle=False)
    .as_numpy_iterator()
  )
  assert (train['inputs_pretokenized'], train['targets_pretokenized']) != (
    ex['inputs_pretokenized'],
    ex['targets_pretokenized'],
  ) or not np.array_equal(train['image'], ex['image'])


def _image(path, color):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new('RGB', (12, 8), color).save(path)


def test_finetune_tasks_on_tiny_files(tmp_path):
  coco = tmp_path / 'coco'
  _image(coco / 'val2014' / 'a.jpg', (250, 0, 0))
  (coco / 'val2014' / 'bad.jpg').write_bytes(b'not a jpeg')
  (coco / 'annotations').mkdir(parents=True)
  ann = {
    'images': [{'id': 1, 'file_name': 'a.jpg'}, {'id': 2, 'file_name': 'bad.jpg'}],
    'annotations': [
      {'image_id': 1, 'id': 10, 'caption': 'a red picture'},
      {'image_id': 1, 'id': 11, 'caption': 'red'},
      {'image_id': 2, 'id': 12, 'caption': 'broken'},
    ],
  }
  (coco / 'annotations' / 'captions_val2014.json').write_text(json.dumps(ann))
  vqa = tmp_path / 'vqa'
  vqa.mkdir()
  _image(coco / 'val2014' / 'COCO_val2014_000000000001.jpg', (0, 0, 250))
  questions = {
    'data_subtype': 'val2014',
    'questions': [{'image_id': 1, 'question': 'What colour?', 'question_id': 7}],
  }
  answers = ['blue'] * 6 + ['navy'] * 4
  annotations = {
    'annotations': [
      {
        'question_id': 7,
        'image_id': 1,
        'answers': [{'answer': a, 'answer_id': i + 1} for i, a in enumerate(answers)],
      }
    ]
  }
  (vqa / 'v2_OpenEnded_mscoco_val2014_questions.json').write_text(json.dumps(questions))
  (vqa / 'v2_mscoco_val2014_annotations.json').write_text(json.dumps(annotations))

  names = finetune_tasks.register_finetune_tasks(
    coco_dir=str(coco), vqa_dir=str(vqa), image_size=16, suffix='_t'
  )
  assert names == ['pali_coco_captions_t', 'pali_vqav2_t']

  cap = seqio.get_mixture_or_task('pali_coco_captions_t')
  out = list(cap.get_dataset(LENGTHS, split='validation', shuffle=False).as_numpy_iterator())
  assert len(out) == 1  # the undecodable image is dropped ...
  assert image_ops.dropped_images('pali_coco_captions_t') == 1  # ... and counted
  ex = out[0]
  assert ex['inputs_pretokenized'] == b'Generate caption in EN:'
  assert ex['targets_pretokenized'].decode() in {'a red picture', 'red'}
  assert ex['image'].shape == (16, 16, 3) and ex['has_image'] == 1.0
  assert cap.postprocess_fn(b'x', example=ex, is_target=True) == ['a red picture', 'red']

  assert list(cap.metric_fns) == metrics.metrics_for('caption')
  vqa_task = seqio.get_mixture_or_task('pali_vqav2_t')
  assert list(vqa_task.metric_fns) == metrics.metrics_for('vqa')
  ex = next(vqa_task.get_dataset(LENGTHS, split='validation', shuffle=False).as_numpy_iterator())
  assert ex['inputs_pretokenized'] == b'Answer in EN: What colour?'
  assert ex['targets_pretokenized'] == b'blue'  # the most frequent answer
  refs = vqa_task.postprocess_fn(b'blue', example=ex, is_target=True)
  assert vqa_task.metric_fns[0]([refs], ['blue'])['vqa_accuracy'] == 100.0


def test_tfrecord_task_language_per_example_and_text_only_rows(tmp_path):
  from pali_pax.tasks import readers

  png = tmp_path / 'x.png'
  _image(png, (0, 200, 0))
  path = str(tmp_path / 'data.tfrecord')
  readers.write_tfrecord(
    path,
    [
      {
        'image': png.read_bytes(),
        'lang': 'de',
        'question': 'Welche Farbe?',
        'texts': ['grün', 'grün', 'hell'],
      },
      {'lang': 'fr', 'question': 'Quoi ?', 'texts': ['rien']},  # no image: text-only
    ],
  )
  names = finetune_tasks.register_finetune_tasks(
    tfrecord_patterns={'validation': path}, tfrecord_kind='vqa', image_size=8, suffix='_t'
  )
  assert names == ['pali_tfrecord_vqa_t']
  ds = seqio.get_mixture_or_task(names[0]).get_dataset(LENGTHS, split='validation', shuffle=False)
  out = list(ds.as_numpy_iterator())
  assert [e['inputs_pretokenized'] for e in out] == [
    b'Answer in DE: Welche Farbe?',
    b'Answer in FR: Quoi ?',
  ]
  assert [e['targets_pretokenized'] for e in out] == [b'gr\xc3\xbcn', b'rien']
  assert [float(e['has_image']) for e in out] == [1.0, 0.0]
  assert not out[1]['image'].any() and out[0]['image'].shape == (8, 8, 3)


def test_xm3600_tasks_per_language_and_mixture(tmp_path):
  _image(tmp_path / 'images' / 'k1.jpg', (9, 9, 9))
  line = {'image/key': 'k1', 'de': {'caption': ['ein Bild']}, 'zh': {'caption': ['一张图片']}}
  (tmp_path / 'captions.jsonl').write_text(json.dumps(line, ensure_ascii=False) + '\n')
  names = finetune_tasks.register_finetune_tasks(
    xm3600_dir=str(tmp_path), image_size=8, suffix='_t'
  )
  assert names == ['pali_xm3600_de_t', 'pali_xm3600_zh_t', 'pali_xm3600_t']
  ex = next(
    seqio.get_mixture_or_task('pali_xm3600_zh_t')
    .get_dataset(LENGTHS, split='test', shuffle=False)
    .as_numpy_iterator()
  )
  assert ex['inputs_pretokenized'] == b'Generate caption in ZH:'
  assert ex['targets_pretokenized'].decode() == '一张图片'
