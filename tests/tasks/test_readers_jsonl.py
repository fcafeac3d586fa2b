"""Your own data: JSONL files + real JPEG/PNG images, read through the registered seqio tasks."""

import json

import numpy as np
import pytest
import seqio
from PIL import Image

from pali_pax.fiddle_configs import experiments
from pali_pax.tasks import finetune_tasks, metrics, readers
from pali_pax.tasks import vocab as vocab_lib

LENGTHS = {'inputs': 32, 'targets': 24}


def _image(path, color, fmt='JPEG'):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new('RGB', (12, 8), color).save(path, format=fmt)


def _write(path, rows):
  path.write_text(
    '\n'.join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + '\n'
  )
  return str(path)


@pytest.fixture()
def data_dir(tmp_path):
  _image(tmp_path / 'imgs' / 'red.jpg', (250, 0, 0))
  _image(tmp_path / 'imgs' / 'blue.png', (0, 0, 250), 'PNG')
  train = [
    {'image': 'imgs/red.jpg', 'task': 'caption', 'lang': 'fr', 'targets': ['un carré rouge']},
    {'image': 'imgs/blue.png', 'task': 'vqa', 'question': 'What colour?', 'targets': ['blue']},
    {'image': 'imgs/blue.png', 'prompt': 'Describe the chart:', 'targets': 'a blue chart'},
  ]
  val = [
    {
      'image': 'imgs/red.jpg',
      'task': 'caption',
      'lang': 'de',
      'targets': ['ein rotes Quadrat', 'rot'],
      'id': 'r1',
    },
    '',  # blank lines are skipped
    {
      'image': 'imgs/blue.png',
      'task': 'vqa',
      'targets': ['navy', 'blue', 'blue'],
      'id': 'q1',
      'question': 'Welche Farbe?',
      'lang': 'de',
    },
  ]
  _write(tmp_path / 'train.jsonl', train)
  _write(tmp_path / 'val.jsonl', val)
  return tmp_path


def _examples(name, split):
  task = seqio.get_mixture_or_task(name)
  ds = task.get_dataset(LENGTHS, split=split, shuffle=False)
  return task, list(ds.as_numpy_iterator())


def test_tasks_per_task_value_with_prompts_targets_images_and_metrics(data_dir):
  names = finetune_tasks.register_finetune_tasks(
    jsonl_dir=str(data_dir), image_size=16, suffix='_j'
  )
  assert names == ['pali_jsonl_caption_j', 'pali_jsonl_vqa_j', 'pali_jsonl_j']
  mixture = seqio.get_mixture_or_task('pali_jsonl_j')
  # Rates follow the number of examples of each task (caption: 2 train + 1 val lines).
  assert {t.name: mixture.get_rate(t) for t in mixture.tasks} == {
    'pali_jsonl_caption_j': 3,
    'pali_jsonl_vqa_j': 2,
  }

  cap, train = _examples('pali_jsonl_caption_j', 'train')
  assert [(e['inputs_pretokenized'], e['targets_pretokenized']) for e in train] == [
    (b'Generate caption in FR:', 'un carré rouge'.encode()),
    (b'Describe the chart:', b'a blue chart'),  # "prompt" without "task": scored as caption
  ]
  red = train[0]['image']
  assert red.shape == (16, 16, 3) and train[0]['has_image'] == 1.0
  assert red[..., 0].min() > 0.9 and red[..., 2].max() < -0.9  # red in [-1, 1]
  vocab = vocab_lib.get_vocabulary(None)
  assert vocab.decode(train[1]['targets'][:-1].tolist()) == 'a blue chart'
  assert list(cap.metric_fns) == metrics.metrics_for('caption')

  vqa, val = _examples('pali_jsonl_vqa_j', 'validation')
  assert list(vqa.metric_fns) == metrics.metrics_for('vqa')
  (ex,) = val
  assert ex['inputs_pretokenized'] == b'Answer in DE: Welche Farbe?'
  assert ex['targets_pretokenized'] == b'blue'  # most frequent of the targets
  assert ex['example_id'] == b'q1' and ex['lang'] == b'de'
  refs = vqa.postprocess_fn(b'blue', example=ex, is_target=True)
  assert refs == ['navy', 'blue', 'blue']
  # VQA accuracy averages min(1, matches / 3) over the leave-one-out subsets: leaving
  # out navy leaves 2 matches (2/3), leaving out a blue leaves 1 (1/3, twice) -> 4/9.
  assert vqa.metric_fns[0]([refs], ['blue'])['vqa_accuracy'] == pytest.approx(100 * 4 / 9)
  _, val_cap = _examples('pali_jsonl_caption_j', 'validation')
  assert val_cap[0]['example_id'] == b'r1' and val_cap[0]['image_id'] == b'imgs/red.jpg'


def test_default_ids_name_file_and_line(data_dir):
  src = readers.jsonl_source({'train': str(data_dir / 'train.jsonl')}, str(data_dir))
  ids = [e['example_id'] for e in src.get_dataset('train', shuffle=False).as_numpy_iterator()]
  assert ids == [b'train.jsonl:1', b'train.jsonl:2', b'train.jsonl:3']


@pytest.mark.parametrize(
  ('line', 'message'),
  [
    ('{"image": "imgs/red.jpg", "targets": ["x"]', r'line 2 is not valid JSON'),
    ('{"image": "imgs/red.jpg", "target": ["x"]}', r"line 2: unknown field\(s\) \['target'\]"),
    ('{"image": "imgs/red.jpg"}', r'line 2: no "targets" field'),
    ('{"image": "imgs/red.jpg", "targets": []}', r'line 2: "targets" should be a string or a'),
    ('{"image": "imgs/nope.jpg", "targets": ["x"]}', r'line 2: image file not found: .*nope.jpg'),
    ('{"image": "imgs/red.jpg", "task": "vqa", "targets": ["x"]}', r'line 2: task .vqa. needs'),
    ('{"image": "imgs/red.jpg", "task": "poem", "targets": ["x"]}', r"line 2: unknown task 'poem'"),
    ('{"image": "imgs/red.jpg", "lang": "xx", "targets": ["x"]}', r'line 2: Unknown language'),
    ('{"task": "detection", "targets": ["x"]}', r'line 2: task .detection. has no prompt'),
    (
      '{"image": "imgs/red.jpg", "id": "train.jsonl:1", "targets": ["x"]}',
      r'already used on line 1',
    ),
    ('["imgs/red.jpg"]', r'line 2: expected a JSON object'),
  ],
)
def test_bad_lines_name_the_file_and_line(data_dir, line, message):
  path = _write(data_dir / 'train.jsonl', ['{"image": "imgs/red.jpg", "targets": "ok"}', line])
  with pytest.raises(readers.DataFormatError, match=message) as err:
    readers.jsonl_task_counts([path], str(data_dir))
  assert path in str(err.value)


@pytest.mark.parametrize('image', ['../outside.jpg', 'ABSOLUTE'])
def test_image_paths_outside_the_data_dir_are_rejected_unless_allowed(tmp_path, image):
  data = tmp_path / 'data'
  data.mkdir()
  _image(tmp_path / 'outside.jpg', (0, 250, 0))
  image = str(tmp_path / 'outside.jpg') if image == 'ABSOLUTE' else image
  path = _write(data / 'train.jsonl', [{'image': image, 'targets': 'green'}])
  with pytest.raises(readers.DataFormatError, match=r'line 1.*outside the data folder') as err:
    readers.jsonl_task_counts([path], str(data))
  assert path in str(err.value)
  assert readers.jsonl_task_counts([path], str(data), allow_outside_data_dir=True) == {'caption': 1}


def test_missing_files_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'train.jsonl, val.jsonl'):
    finetune_tasks.register_jsonl_tasks(str(tmp_path))


def test_text_only_line_keeps_a_zero_image(tmp_path):
  _write(tmp_path / 'val.jsonl', [{'prompt': 'Translate to DE: cat', 'targets': ['Katze']}])
  finetune_tasks.register_jsonl_tasks(str(tmp_path), image_size=8, suffix='_txt')
  _, (ex,) = _examples('pali_jsonl_caption_txt', 'validation')
  assert ex['has_image'] == 0.0 and not np.any(ex['image'])
  assert ex['inputs_pretokenized'] == b'Translate to DE: cat'


def test_cpu_sized_experiment_reads_the_jsonl_mixture(data_dir):
  exp = experiments.PaliFinetuneJsonlTiny(DATA_DIR=str(data_dir))
  train, *evals = exp.datasets()
  assert train.mixture_name == 'pali_jsonl' and train.is_training
  # Tasks, not the mixture: paxml computes seqio metrics of tasks only.
  per_task = ['pali_jsonl_caption', 'pali_jsonl_vqa']
  assert [e.mixture_name for e in evals] == per_task
  assert [d.mixture_name for d in exp.decoder_datasets()] == per_task
  # Only tasks with validation lines are evaluated; explicit choices are kept.
  _write(data_dir / 'val.jsonl', [{'image': 'imgs/red.jpg', 'targets': ['rouge'], 'lang': 'fr'}])
  assert [d.mixture_name for d in exp.decoder_datasets()] == per_task  # already chosen
  fresh = experiments.PaliFinetuneJsonlTiny(DATA_DIR=str(data_dir))
  assert [d.mixture_name for d in fresh.decoder_datasets()] == ['pali_jsonl_caption']
  chosen = experiments.PaliFinetuneJsonlTiny(DATA_DIR=str(data_dir), EVAL_TASKS=('pali_jsonl',))
  assert [e.mixture_name for e in chosen.datasets()[1:]] == ['pali_jsonl']
  assert exp.VOCAB_SIZE == vocab_lib.get_vocabulary(None).vocab_size
  model = exp.model_config()
  assert model.vit_tpl.image_size == 32 and model.mt5_tpl.vocab_size == exp.VOCAB_SIZE
  assert tuple(model.ici_mesh_shape or (1, 1, 1)) == (1, 1, 1)
