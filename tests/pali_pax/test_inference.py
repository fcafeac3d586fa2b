"""Predictor: parity with HF mT5 / SigLIP through `from_components`, generation, scoring."""

import numpy as np
import pytest

from pali_pax.convert import load_mt5
from pali_pax.core.tree import flatten
from pali_pax.inference import Predictor
from pali_pax.tasks import vocab as vocab_lib
from tests import paths
from tests.numerics import (
  TINY_VIT,
  assert_f32_close,
  hf_config,
  mt5_chains,
  pali_tiny_chain,
  vit_chain,
)
from tests.paths import MT5_HF
from tests.paths import VIT_HF as SIGLIP
from tests.paths import VIT_NPZ as BV_NPZ

MT5_REF = dict(np.load(paths.MT5_REF))
VIT_REF = dict(np.load(paths.VIT_REF))
# vit_siglip_tiny: ViT 'tiny' at 28 px, patch 7 (float32 reference).
SIGLIP_CHAIN = vit_chain(patch=7, tokens=16, **TINY_VIT)
PROMPTS = ['Answer in en: colour?', 'Generate caption in de:', 'Answer in fr: forme?']
TARGETS = ['red', 'ein blauer Kreis', 'carré']
IMAGES_32 = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def text_model():
  """mT5 fixture only (vit_tpl=None)."""
  return Predictor.from_components(mt5=MT5_HF)


@pytest.fixture(scope='module')
def siglip_model():
  """mT5 fixture + HF SigLIP fixture (28 px, 16 tokens of width 32)."""
  return Predictor.from_components(mt5=MT5_HF, vit=SIGLIP)


@pytest.fixture(scope='module')
def vocab_model(mt5_hf_2100, vit_npz_tiny8):
  """vocab-2100 mT5 + ViT tiny/8 at 32 px with the shipped SentencePiece model."""
  return Predictor.from_components(
    mt5=mt5_hf_2100, vit=vit_npz_tiny8, vocab=vocab_lib.DEFAULT_VOCAB_PATH, seed=3
  )


def _string_batch(vocab):
  """(prompt ids [3, Ti], decoder input ids [3, To], target ids [3, To]), eos-terminated."""
  enc = _pad([vocab.encode(p) + [1] for p in PROMPTS])
  tgt = _pad([vocab.encode(t) + [1] for t in TARGETS])
  dec = np.concatenate([np.zeros((3, 1), np.int32), tgt[:, :-1]], axis=1)  # start id 0
  return enc, dec, tgt


def _ref_logits(p, images=None):
  return p.text_logits(
    MT5_REF['encoder_ids'], MT5_REF['decoder_ids'], MT5_REF['encoder_mask'], images=images
  )


def _pad(rows):
  """Token id lists -> int32 [B, max length], 0-padded."""
  out = np.zeros((len(rows), max(map(len, rows))), np.int32)
  for i, r in enumerate(rows):
    out[i, : len(r)] = list(r)
  return out


def _assert_logits_match(got, want):
  """Against the float64 HF reference logits (mt5_reference.npz)."""
  mask = MT5_REF['decoder_mask'].astype(bool)
  assert got.shape == want.shape and got.dtype == np.float32
  _, chain = mt5_chains(
    hf_config(MT5_HF), *(MT5_REF[k].shape[1] for k in ('encoder_ids', 'decoder_ids'))
  )
  assert_f32_close(got[mask], want[mask], chain, implementations=1)


# --------------------------------------------------------------- text parity


def test_text_logits_match_hf(text_model):
  assert text_model.model_cfg.vit_tpl is None and set(text_model.params) == {'mt5'}
  _assert_logits_match(_ref_logits(text_model), MT5_REF['logits'])


def test_greedy_generate_matches_hf(text_model):
  steps = MT5_REF['generate_ids'].shape[1] - 1  # HF ids start with the start id 0
  got = text_model.generate_ids(
    MT5_REF['generate_input_ids'], MT5_REF['generate_input_mask'], max_decode_steps=steps
  )
  for row, hf in zip(got, MT5_REF['generate_ids'][:, 1:], strict=True):
    eos = np.nonzero(hf == 1)[0]
    want = hf[: eos[0] + 1] if eos.size else hf  # HF pads finished rows with 0
    assert row.dtype == np.int32
    np.testing.assert_array_equal(row, want)


def test_beam_search_sequences_end_in_eos_or_max_length(text_model):
  out = text_model.generate_ids(
    MT5_REF['generate_input_ids'], MT5_REF['generate_input_mask'], max_decode_steps=6, beam_size=2
  )
  assert len(out) == 5
  for row in out:
    assert 1 <= len(row) <= 6
    assert row[-1] == 1 or len(row) == 6
    assert not np.any(row[:-1] == 1) and np.all(row >= 0) and np.all(row < 128)


def test_t5x_checkpoint_gives_same_params_and_logits(mt5_t5x_dir, mt5_hf_2100, vocab_model):
  # The T5X copy of mt5_hf_2100 (conftest): its sizes are read off the arrays.
  p = Predictor.from_components(mt5=mt5_t5x_dir)
  cfg = p.model_cfg.mt5_tpl
  sizes = (cfg.vocab_size, cfg.model_dims, cfg.hidden_dims, cfg.num_heads, cfg.dim_per_head)
  assert sizes == (2100, 32, 48, 4, 8)
  assert (cfg.num_encoder_layers, cfg.num_decoder_layers) == (2, 2)
  assert (cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance) == (32, 128)
  got, want = flatten(p.params['mt5']), flatten(load_mt5(mt5_hf_2100, progress=False))
  assert set(got) == set(want)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  # Text-only examples of a PaLI model are plain mT5 (the image tokens are padding).
  enc, dec, _ = _string_batch(vocab_model.vocab)
  chain = pali_tiny_chain(8, 32, enc.shape[1], dec.shape[1])
  assert_f32_close(p.text_logits(enc, dec), vocab_model.text_logits(enc, dec), chain)


# ---------------------------------------------------------------- images


@pytest.mark.parametrize('vit', [SIGLIP, BV_NPZ], ids=['hf_siglip', 'big_vision'])
def test_image_features_match_siglip(vit, siglip_model):
  p = siglip_model if vit == SIGLIP else Predictor.from_components(mt5=MT5_HF, vit=vit)
  assert p.image_size == 28
  feats = p.image_features(VIT_REF['images'])
  assert feats.dtype == np.float32 and feats.shape == (3, 16, 32)
  assert_f32_close(feats, VIT_REF['last_hidden_state'], SIGLIP_CHAIN)


def test_uint8_images_are_normalised(siglip_model):
  pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
  assert_f32_close(
    siglip_model.image_features(pixels),
    siglip_model.image_features(pixels.astype(np.float32) / 127.5 - 1.0),
    SIGLIP_CHAIN,
  )


def test_bad_inputs_raise(text_model, siglip_model):
  images, ids = VIT_REF['images'], MT5_REF['encoder_ids']
  dec = MT5_REF['decoder_ids']
  with pytest.raises(ValueError, match=r'\[B, H, W, 3\]'):
    siglip_model.image_features(images[0])  # no batch axis
  with pytest.raises(ValueError, match=r'\[B, H, W, 3\]'):
    siglip_model.image_features(np.zeros((1, 28, 28, 4), np.float32))
  with pytest.raises(ValueError, match='28x28'):
    siglip_model.image_features(np.zeros((1, 32, 32, 3), np.float32))
  with pytest.raises(ValueError, match=r'\[-1, 1\]'):
    siglip_model.image_features(images * 3)
  with pytest.raises(ValueError, match='2 images for 3 prompts'):
    siglip_model.text_logits(ids, dec, images=images[:2])
  with pytest.raises(ValueError, match='outside'):
    text_model.text_logits(np.full((1, 3), 128), dec[:1])
  with pytest.raises(ValueError, match='outside'):
    text_model.generate_ids(np.array([[-1, 5]]))
  with pytest.raises(ValueError, match=r'\[B, T\]'):
    text_model.generate_ids(ids[0])
  with pytest.raises(ValueError, match='no ViT'):
    text_model.text_logits(ids, dec, images=images)
  with pytest.raises(ValueError, match='no vocabulary'):
    text_model.generate(None, ['hello'])


# ------------------------------------------------- strings: generate / score


def test_images_change_every_example(vocab_model):
  enc, dec, tgt = _string_batch(vocab_model.vocab)
  text_only = vocab_model.text_logits(enc, dec)
  with_images = vocab_model.text_logits(enc, dec, images=IMAGES_32)
  diff = np.abs(with_images - text_only).max(axis=2)
  assert np.all(diff[tgt != 0] > 1e-4)


def test_generate_with_vocabulary(vocab_model):
  texts = vocab_model.generate(IMAGES_32, PROMPTS, max_decode_steps=5)
  assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
  enc, _, _ = _string_batch(vocab_model.vocab)
  ids = vocab_model.generate_ids(enc, images=IMAGES_32, max_decode_steps=5)
  assert texts == [vocab_model.vocab.decode([int(t) for t in row if t != 1]) for row in ids]
  assert len(vocab_model.generate(None, PROMPTS, max_decode_steps=5)) == 3  # text only
  with pytest.raises(ValueError, match='3 images for 1 prompts'):
    vocab_model.generate(IMAGES_32, PROMPTS[:1])


def test_has_image_mixes_image_and_text_only_rows(vocab_model):
  enc, _, _ = _string_batch(vocab_model.vocab)
  with_images = vocab_model.generate_ids(enc, images=IMAGES_32, max_decode_steps=6)
  text_only = vocab_model.generate_ids(enc, max_decode_steps=6)
  assert any(not np.array_equal(a, b) for a, b in zip(with_images, text_only, strict=True))
  mixed = vocab_model.generate_ids(
    enc, images=IMAGES_32, max_decode_steps=6, has_image=np.array([1, 0, 1])
  )
  for got, want in zip(mixed, [with_images[0], text_only[1], with_images[2]], strict=True):
    np.testing.assert_array_equal(got, want)
  with pytest.raises(ValueError, match='no images were given'):
    vocab_model.generate_ids(enc, has_image=[1, 0, 0])
  with pytest.raises(ValueError, match=r'has_image has shape \(2,\)'):
    vocab_model.generate_ids(enc, images=IMAGES_32, has_image=[1, 0])
  with pytest.raises(ValueError, match='only 0 and 1'):
    vocab_model.generate_ids(enc, images=IMAGES_32, has_image=[1, 0, 0.5])


def test_score_is_sum_of_target_log_probs(vocab_model):
  enc, dec, tgt = _string_batch(vocab_model.vocab)
  logits = vocab_model.text_logits(enc, dec, images=IMAGES_32).astype(np.float64)
  shifted = logits - logits.max(-1, keepdims=True)
  logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  picked = np.take_along_axis(logp, tgt[..., None], axis=-1)[..., 0]
  want = (picked * (tgt != 0)).sum(axis=1)
  got = vocab_model.score(IMAGES_32, PROMPTS, TARGETS)
  assert got.shape == (3,) and got.dtype == np.float32 and np.all(got < 0)
  # Both come from float32 logits; the sums over the vocabulary and the target differ.
  chain = pali_tiny_chain(8, 32, enc.shape[1], dec.shape[1]) + logits.shape[-1] + tgt.shape[1]
  assert_f32_close(got, want, chain, scale=float(np.abs(logits).max()))
  with pytest.raises(ValueError, match='2 prompts but 1 targets'):
    vocab_model.score(IMAGES_32[:2], PROMPTS[:2], TARGETS[:1])
