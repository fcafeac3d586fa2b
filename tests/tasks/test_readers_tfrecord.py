"""TFRecord and TFDS readers round-trip onto the raw schema."""

import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from pali_pax.tasks import readers


def _jpeg(color):
  buf = io.BytesIO()
  Image.new('RGB', (5, 4), color).save(buf, format='JPEG')
  return buf.getvalue()


def _as_python(ds):
  assert set(ds.element_spec) == set(readers.RAW_FEATURES)
  out = []
  for ex in ds.as_numpy_iterator():
    row = {k: v for k, v in ex.items() if k != 'texts'}
    row['texts'] = list(ex['texts'])
    out.append(row)
  return out


def test_write_then_read_default_keys(tmp_path):
  examples = [
    {
      'image': _jpeg((1, 2, 3)),
      'image_id': '17',
      'example_id': 'q1',
      'lang': 'de',
      'question': 'Was ist das?',
      'texts': ['eine Katze', 'Katze'],
    },
    {'image': b'', 'image_id': '', 'example_id': 'q2', 'lang': 'en', 'question': '', 'texts': []},
  ]
  for i, ex in enumerate(examples):
    readers.write_tfrecord(str(tmp_path / f'part-{i}.tfrecord'), [ex])
  src = readers.tfrecord_source({'validation': str(tmp_path / 'part-*.tfrecord')})
  got = sorted(
    _as_python(src.get_dataset('validation', shuffle=False)), key=lambda e: e['example_id']
  )
  want = [
    {k: (v.encode() if isinstance(v, str) else v) for k, v in ex.items() if k != 'texts'}
    | {'texts': [t.encode() for t in ex['texts']]}
    for ex in examples
  ]
  assert got == want
  # File-level sharding of the TFExampleDataSource parent is kept.
  shard = src.get_dataset('validation', shuffle=False, shard_info=_shard(2, 1))
  assert len(list(shard)) == 1


def _shard(num, index):
  import seqio

  return seqio.ShardInfo(index=index, num_shards=num)


def test_custom_keys_int_ids_and_several_text_keys(tmp_path):
  blob = _jpeg((90, 0, 0))
  feature = {
    'img': tf.train.Feature(bytes_list=tf.train.BytesList(value=[blob])),
    'id': tf.train.Feature(int64_list=tf.train.Int64List(value=[123])),
    'caption': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'first'])),
    'more': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'second', b'third'])),
  }
  path = tmp_path / 'x.tfrecord'
  with tf.io.TFRecordWriter(str(path)) as w:
    w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
  src = readers.tfrecord_source(
    str(path),
    image_key='img',
    text_keys=('caption', 'more'),
    image_id_key='id',
    example_id_key=None,
    question_key=None,
    lang_key=None,
    default_lang='fr',
    int64_keys=('id',),
  )
  (ex,) = _as_python(src.get_dataset('train', shuffle=False))
  assert ex == {
    'image': blob,
    'image_id': b'123',
    'example_id': b'',
    'lang': b'fr',
    'question': b'',
    'texts': [b'first', b'second', b'third'],
  }


def test_tfrecord_missing_files(tmp_path):
  src = readers.tfrecord_source(str(tmp_path / 'none-*.tfrecord'))
  with pytest.raises(ValueError, match='none-'):
    src.get_dataset('train', shuffle=False)


class PaliTinyCaptions(tfds.core.GeneratorBasedBuilder):
  """A two-example captioning dataset, prepared locally by the test (no download)."""

  VERSION = tfds.core.Version('1.0.0')
  # No code folder (checksums, README): TFDS would look it up through
  # importlib_resources, which this environment lacks.
  code_path = None

  def _info(self):
    return tfds.core.DatasetInfo(
      builder=self,
      features=tfds.features.FeaturesDict(
        {
          'image': tfds.features.Image(encoding_format='png'),
          'image/id': np.int64,
          'captions': tfds.features.Sequence({'text': tfds.features.Text()}),
          'label': tfds.features.ClassLabel(names=['cat', 'dog']),
        }
      ),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    for i in range(2):
      yield (
        i,
        {
          'image': np.full((3, 4, 3), 40 * i, np.uint8),
          'image/id': 100 + i,
          'captions': {'text': [f'caption {i}', f'another {i}']},
          'label': i,
        },
      )


def test_tfds_source_local_dataset(tmp_path):
  PaliTinyCaptions(data_dir=str(tmp_path)).download_and_prepare()
  src = readers.tfds_source(
    'pali_tiny_captions',
    data_dir=str(tmp_path),
    splits={'train': 'train'},
    text_keys=('captions/text', 'label'),
    image_id_key='image/id',
  )
  got = sorted(_as_python(src.get_dataset('train', shuffle=False)), key=lambda e: e['image_id'])
  assert [(e['image_id'], e['texts'], e['lang']) for e in got] == [
    (b'100', [b'caption 0', b'another 0', b'cat'], b'en'),
    (b'101', [b'caption 1', b'another 1', b'dog'], b'en'),
  ]
  # `image` holds the stored (undecoded) PNG bytes.
  for i, e in enumerate(got):
    assert e['image'][:4] == b'\x89PNG'
    np.testing.assert_array_equal(tf.io.decode_png(e['image']).numpy(), np.full((3, 4, 3), 40 * i))


def test_tfds_not_prepared_is_clear(tmp_path):
  src = readers.tfds_source('pali_tiny_captions', data_dir=str(tmp_path / 'empty'))
  with pytest.raises(FileNotFoundError, match='not prepared'):
    src.get_dataset('train', shuffle=False)
  src = readers.tfds_source('no_such_dataset_pali', data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match='no_such_dataset_pali'):
    src.get_dataset('train', shuffle=False)
