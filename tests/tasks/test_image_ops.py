"""Image decoding in tf.data: formats, colour modes, resizing, bad images dropped and counted."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pali_pax.tasks import image_ops

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _picture() -> Image.Image:
  """20 x 10: left half red, right half blue."""
  im = Image.new('RGB', (20, 10), RED)
  im.paste(BLUE, (10, 0, 20, 10))
  return im


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
  buf = io.BytesIO()
  im.save(buf, fmt, **kw)
  return buf.getvalue()


def _animated_gif() -> bytes:
  frames = [_picture(), Image.new('RGB', (20, 10), (0, 255, 0))]
  buf = io.BytesIO()
  frames[0].save(buf, 'GIF', save_all=True, append_images=frames[1:])
  return buf.getvalue()


GOOD = {
  'jpeg': lambda: _encode(_picture(), 'JPEG', quality=100),
  'cmyk_jpeg': lambda: _encode(_picture().convert('CMYK'), 'JPEG', quality=100),
  'png_rgba': lambda: _encode(_picture().convert('RGBA'), 'PNG'),
  'gif_animated': _animated_gif,
  'bmp_rgb': lambda: _encode(_picture(), 'BMP'),
  'bmp_palette': lambda: _encode(_picture().quantize(colors=4), 'BMP'),
}
BAD = {
  'empty': lambda: b'',
  'garbage': lambda: b'this is not an image at all',
  'truncated_jpeg': lambda: _encode(_picture(), 'JPEG')[:120],
  'truncated_png': lambda: _encode(_picture(), 'PNG')[:60],
  'bmp_1bit': lambda: _encode(_picture().convert('1'), 'BMP'),  # TF cannot decode 1-bit BMP
}


def _files(tmp_path, kinds):
  """Writes each image to disk and returns (paths, names) in order."""
  paths = []
  for name, make in kinds:
    path = tmp_path / name
    path.write_bytes(make())
    paths.append(str(path))
  return paths


def _run(paths, size, counter, **kw):
  ds = tf.data.Dataset.from_tensor_slices({'path': paths, 'idx': np.arange(len(paths))})
  ds = ds.map(lambda ex: {'image': tf.io.read_file(ex['path']), 'idx': ex['idx']})
  return list(image_ops.decode_images(size, counter=counter, **kw)(ds).as_numpy_iterator())


def test_formats_and_colour_modes_decode_to_rgb(tmp_path):
  paths = _files(tmp_path, GOOD.items())
  out = _run(paths, 8, 'test_formats')
  assert [int(e['idx']) for e in out] == list(range(len(GOOD)))
  assert image_ops.dropped_images('test_formats') == 0
  for name, ex in zip(GOOD, out, strict=True):
    img = ex['image']
    assert img.shape == (8, 8, 3) and img.dtype == np.float32 and ex['has_image'] == 1.0
    assert img.min() >= -1.0 and img.max() <= 1.0
    # Left column red, right column blue (after scaling to [-1, 1]), tolerance for JPEG.
    np.testing.assert_allclose(img[4, 0], [1, -1, -1], atol=0.15, err_msg=name)
    np.testing.assert_allclose(img[4, 7], [-1, -1, 1], atol=0.15, err_msg=name)


def test_grayscale_and_16bit_png_become_gray_rgb(tmp_path):
  gray = Image.new('L', (6, 6), 128)
  paths = _files(
    tmp_path,
    [
      ('gray.png', lambda: _encode(gray, 'PNG')),
      ('gray16.png', lambda: _encode(gray.convert('I;16'), 'PNG')),
    ],
  )
  out = _run(paths, 4, 'test_gray')
  np.testing.assert_allclose(out[0]['image'], np.full((4, 4, 3), 128 / 127.5 - 1), atol=1e-5)
  assert out[1]['image'].shape == (4, 4, 3)
  assert np.ptp(out[1]['image'][0, 0]) == 0  # equal channels


def test_corrupt_and_empty_images_are_dropped_and_counted(tmp_path):
  kinds = [
    ('a_ok.png', GOOD['png_rgba']),
    *((f'bad_{k}', v) for k, v in BAD.items()),
    ('z_ok.jpg', GOOD['jpeg']),
  ]
  paths = _files(tmp_path, kinds)
  out = _run(paths, 16, 'test_bad')
  assert [int(e['idx']) for e in out] == [0, len(kinds) - 1]  # order kept, bad ones gone
  assert image_ops.dropped_images('test_bad') == len(BAD)
  assert image_ops.log_dropped_images()['test_bad'] == len(BAD)
  assert image_ops.dropped_images() >= len(BAD)


def test_reader_errors_upstream_are_not_swallowed(tmp_path):
  ds = tf.data.Dataset.from_tensor_slices([str(tmp_path / 'missing.jpg')])
  ds = ds.map(lambda p: {'image': tf.io.read_file(p)})
  with pytest.raises(tf.errors.NotFoundError):
    list(image_ops.decode_images(8, counter='test_upstream')(ds))


def test_text_only_examples():
  ds = tf.data.Dataset.from_tensor_slices({'image': [b'', _encode(_picture(), 'PNG')]})
  out = list(
    image_ops.decode_images(4, counter='test_text_only', allow_text_only=True)(
      ds
    ).as_numpy_iterator()
  )
  assert [float(e['has_image']) for e in out] == [0.0, 1.0]
  assert not out[0]['image'].any()
  assert image_ops.dropped_images('test_text_only') == 0
  ex = next(
    image_ops.add_text_only_image(6)(tf.data.Dataset.from_tensors({'x': 1})).as_numpy_iterator()
  )
  assert ex['image'].shape == (6, 6, 3) and not ex['image'].any() and ex['has_image'] == 0.0


def test_resize_and_scale_configurable_sizes():
  img = tf.fill([10, 30, 3], tf.constant(255, tf.uint8))
  for size in (32, 224, 588):
    out = image_ops.resize_and_scale(img, size)
    assert out.shape == (size, size, 3)
    np.testing.assert_allclose(out.numpy(), 1.0, atol=1e-5)
  same = tf.zeros([8, 8, 3], tf.uint8)
  np.testing.assert_array_equal(image_ops.resize_and_scale(same, 8).numpy(), -1.0)


@pytest.mark.parametrize('fmt', ['JPEG', 'PNG', 'GIF', 'BMP'])
def test_header_pixels_match_pil(fmt):
  for size in ((20, 10), (3, 7), (300, 1)):
    data = _encode(Image.new('RGB', size, RED), fmt)
    assert int(image_ops.header_pixels(tf.constant(data))) == size[0] * size[1]
  assert int(image_ops.header_pixels(tf.constant(b'not an image'))) == -1


def test_pixel_cap_applies_before_decoding(tmp_path):
  """A header declaring too many pixels is dropped as 'too_large', never decoded.

  The big PNG is cut after its header: were it decoded, it would fail as 'undecodable';
  being counted 'too_large' shows the header alone decided. A 10000 x 10000 PNG (the
  issue's 315 KB file) is dropped the same way, and images at the cap still decode.
  """
  big = _encode(Image.new('L', (10000, 10000), 0), 'PNG')
  kinds = [
    ('a_ok.png', GOOD['png_rgba']),  # 200 px
    ('b_header_only.png', lambda: big[:64]),
    ('c_big.png', lambda: big),
    ('d_at_cap.jpg', lambda: _encode(Image.new('RGB', (20, 10), RED), 'JPEG')),  # 200 px
    ('e_over_cap.jpg', lambda: _encode(Image.new('RGB', (21, 10), RED), 'JPEG')),  # 210 px
  ]
  out = _run(_files(tmp_path, kinds), 4, 'test_cap', max_pixels=200)
  assert [int(e['idx']) for e in out] == [0, 3]
  assert image_ops.dropped_images('test_cap', 'too_large') == 3
  assert image_ops.dropped_images('test_cap', 'undecodable') == 0
  assert image_ops.dropped_images('test_cap') == 3
  # The default cap (25 MP) drops the 100 MP image too, and no cap decodes the small ones.
  out = _run(_files(tmp_path, kinds[2:4]), 4, 'test_default_cap')
  assert [int(e['idx']) for e in out] == [1]
  assert image_ops.dropped_images('test_default_cap', 'too_large') == 1
  assert len(_run(_files(tmp_path, kinds[3:]), 4, 'test_no_cap', max_pixels=None)) == 2


def test_empty_image_counted_with_its_reason(tmp_path):
  out = _run(_files(tmp_path, [('empty', BAD['empty']), ('ok', GOOD['jpeg'])]), 4, 'test_empty')
  assert [int(e['idx']) for e in out] == [1]
  assert image_ops.dropped_images('test_empty', 'empty') == 1
  assert image_ops.dropped_images('test_empty', 'undecodable') == 0


def test_load_image_reads_a_file_as_the_pipeline_decodes_it(tmp_path):
  from pali_pax.core import errors

  path = tmp_path / 'x.png'
  path.write_bytes(_encode(_picture(), 'PNG'))
  out = image_ops.load_image(str(path), 8)
  assert out.dtype == np.float32 and out.shape == (8, 8, 3)
  ds = tf.data.Dataset.from_tensors({'image': tf.constant(path.read_bytes())})
  piped = next(image_ops.decode_images(8, counter='test_load_image')(ds).as_numpy_iterator())
  np.testing.assert_array_equal(out, piped['image'])
  np.testing.assert_allclose(out[:, 0], [[1.0, -1.0, -1.0]] * 8, atol=1e-5)  # red left edge
  with pytest.raises(errors.MissingFileError, match='missing.png'):
    image_ops.load_image(str(tmp_path / 'missing.png'), 8)
  (tmp_path / 'bad.png').write_bytes(b'not an image')
  with pytest.raises(errors.FileFormatError, match='bad.png is not a readable image'):
    image_ops.load_image(str(tmp_path / 'bad.png'), 8)
