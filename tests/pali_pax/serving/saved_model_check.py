"""Shared check: a SavedModel run by TensorFlow alone gives the Predictor's greedy outputs.

`check_against_predictor(saved_model_dir, predictor, tmp_path)` sends a batch of 1 and a
batch of 3 (a PNG at the model's size, a JPEG that must be resized, a text-only row) to
`tf_only_runner.py` in a fresh process and compares, row by row, with `Predictor.generate`
on the same images decoded by the tasks' image functions: identical strings, and a
score equal to the sum of the teacher-forced log-probabilities of the greedy ids.
"""

import base64
import io
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

from pali_pax.core import batch as batch_lib
from pali_pax.serving import tf_io
from pali_pax.tasks import image_ops

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tf_only_runner.py')
PROMPTS = ['Generate caption in en:', 'Answer in fr: what colour is the circle?', 'OCR:']


def _encoded(arr, fmt):
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, format=fmt)
  return buf.getvalue()


def requests(image_size, seed=0):
  """[(encoded image bytes or b'' for text only, prompt)] * 3."""
  rng = np.random.default_rng(seed)
  png = _encoded(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8), 'PNG')
  jpeg = _encoded(rng.integers(0, 256, (image_size + 9, image_size + 17, 3), np.uint8), 'JPEG')
  return [(png, PROMPTS[0]), (jpeg, PROMPTS[1]), (b'', PROMPTS[2])]


def run_tf_only(saved_model, batches, tmp_path):
  """Outputs of `tf_only_runner.py` for batches of (image bytes, prompt)."""
  req = {
    'batches': [
      [{'image_b64': base64.b64encode(i).decode(), 'prompt': p} for i, p in b] for b in batches
    ]
  }
  req_path, out_path = os.path.join(tmp_path, 'req.json'), os.path.join(tmp_path, 'out.json')
  with open(req_path, 'w') as f:
    json.dump(req, f)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
    [sys.executable, RUNNER, saved_model, req_path, out_path],
    capture_output=True,
    text=True,
    timeout=600,
    env=env,
    cwd=tmp_path,  # not the repository: nothing of pali_pax on the path
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(out_path) as f:
    return json.load(f)


def decoded_images(predictor, batch):
  """(float32 [B, S, S, 3], has_image [B]) of the batch's bytes, by the tasks' TF functions."""
  data = tf.constant([i for i, _ in batch])
  pixels, has_image = tf_io.decode_images(data, predictor.image_size, image_ops.MAX_IMAGE_PIXELS)
  return pixels.numpy(), has_image.numpy()


def expected_texts(predictor, batch, steps):
  """`Predictor.generate` strings of a batch of (image bytes, prompt)."""
  pixels, has_image = decoded_images(predictor, batch)
  prompts = [p for _, p in batch]
  return predictor.generate(pixels, prompts, max_decode_steps=steps, has_image=has_image)


def expected_scores(predictor, batch, steps):
  """Sum of teacher-forced log-probs [B] of the Predictor's greedy ids (eos included)."""
  pixels, has_image = decoded_images(predictor, batch)
  prompt_ids = predictor._encode([p for _, p in batch])
  ids = predictor.generate_ids(
    prompt_ids, images=pixels, max_decode_steps=steps, has_image=has_image
  )
  dec = batch_lib.pad_ids([np.concatenate([[batch_lib.DECODER_START_ID], row[:-1]]) for row in ids])
  model_batch = predictor._batch(prompt_ids, None, pixels, dec, has_image=has_image)
  logits = np.asarray(predictor._jit_logits(predictor.params, model_batch), np.float64)
  top = logits.max(-1, keepdims=True)
  logp = logits - top - np.log(np.sum(np.exp(logits - top), -1, keepdims=True))
  return [float(np.sum(logp[i, np.arange(len(row)), row])) for i, row in enumerate(ids)]


def check_against_predictor(saved_model, predictor, tmp_path, steps):
  """Asserts the TF-only outputs equal the Predictor's, for batch sizes 1 and 3."""
  reqs = requests(predictor.image_size)
  batches = [reqs[:1], reqs]
  got = run_tf_only(saved_model, batches, tmp_path)
  assert not any(got['modules'].values()), got['modules']
  for batch, out in zip(batches, got['batches'], strict=True):
    assert out['text'] == expected_texts(predictor, batch, steps)
  scores = expected_scores(predictor, reqs, steps)
  np.testing.assert_allclose(got['batches'][1]['score'], scores, rtol=1e-4, atol=1e-3)
  # A request's answer does not depend on the batch it came in.
  assert got['batches'][0]['text'][0] == got['batches'][1]['text'][0]
  return got
