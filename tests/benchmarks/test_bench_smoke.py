"""Smoke test of the benchmark harness on a tiny PaLI (no torch, one train step)."""

import os
import sys

import pytest

# `benchmarks` is a top-level folder of the repository, not an installed package:
# importable under `python -m pytest` (cwd on sys.path), and here for plain `pytest`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks import configs, decode, flops  # noqa: E402

# Tiny spec, by hand (benchmarks.configs.SPECS['tiny'] must agree):
# ViT 'tiny/14' width 32, depth 2, MLP 64 on 28 px -> N = 4 patches of 14x14x3;
# mT5 'tiny' d_model 32, 2 + 2 layers, d_ff 48, 4 heads x d_kv 8 (inner 32);
# vocab 128, batch 2, prompt 4 (encoder S = 4 + 4 = 8), target 4.
PATCH = 2 * 4 * (14 * 14 * 3) * 32
VIT_BLOCK = (
  2 * 4 * 32 * 96  # q, k, v
  + 2 * 4 * 4 * 32  # logits
  + 2 * 4 * 4 * 32  # probs . v
  + 2 * 4 * 32 * 32  # output projection
  + 2 * 2 * 4 * 32 * 64  # MLP in + out
)
FUSION = 2 * 4 * 32 * 32
ENC_LAYER = 4 * 2 * 8 * 32 * 32 + 2 * 2 * 8 * 8 * 32 + 3 * 2 * 8 * 32 * 48
DEC_LAYER = (
  (4 * 2 * 4 * 32 * 32 + 2 * 2 * 4 * 4 * 32)  # self-attention
  + (2 * 2 * 4 * 32 * 32 + 2 * 2 * 8 * 32 * 32 + 2 * 2 * 4 * 8 * 32)  # cross (q,o; k,v; attend)
  + 3 * 2 * 4 * 32 * 48  # gated feed-forward
)
LM_HEAD = 2 * 4 * 32 * 128
FWD_PER_EXAMPLE = PATCH + 2 * VIT_BLOCK + FUSION + 2 * ENC_LAYER + 2 * DEC_LAYER + LM_HEAD
TRAIN = 3 * 2 * FWD_PER_EXAMPLE - 2 * PATCH  # batch 2; no input gradient for the image


def test_analytic_flops_match_hand_count():
  spec = configs.SPECS['tiny']
  assert flops.forward_flops(spec) == 2 * FWD_PER_EXAMPLE == 1_742_848
  assert flops.train_flops(spec) == TRAIN == 4_927_488
  # Twice the visual tokens: the ViT and encoder grow, the decoder's cross-attention too.
  big = spec.replace(image_size=56)
  assert flops.train_flops(big) > 2 * flops.train_flops(spec) - 2 * 3 * 2 * (DEC_LAYER + LM_HEAD)


def test_per_token_removes_prefill():
  recs = [{'method': 'm', 'steps': n, 'timing': {'median': 1.0 + 0.01 * n}} for n in (1, 16, 64)]
  assert decode.per_token(recs, 'm', 16) == pytest.approx(0.01)
  assert decode.per_token(recs, 'm', 64) == pytest.approx(0.01)
  assert decode.per_token(recs, 'x', 16) is None


def test_fsdp_extrapolation_recovers_the_split():
  from benchmarks import memory_plan

  a, w = 5.0, 40.0  # live(d) = A + W / d
  recs = [
    {'size': '17b', 'image_size': 224, 'fsdp': True, 'mesh': [1, d, 4], 'peak': a + w / d}
    for d in (2, 4)
  ] + [{'size': '17b', 'image_size': 224, 'fsdp': False, 'mesh': [1, 2, 4], 'peak': 99.0}]
  (e,) = memory_plan.fsdp_extrapolation(recs, data=256)
  assert e['A'] == pytest.approx(a) and e['W'] == pytest.approx(w)
  assert e['live'] == pytest.approx(a + w / 256)
  assert memory_plan.parse_point('17b:588:fsdp:res@16', 8) == {
    'size': '17b',
    'image_size': 588,
    'fsdp': True,
    'shard_residual': True,
    'devices': 16,
  }
  assert memory_plan.parse_point('3b:224', 8)['devices'] == 8


def test_decode_profile_kinds_and_table_by_hand():
  from benchmarks import profile

  kinds = {
    n: profile._kind(n)
    for n in ('dot_general.294', 'loop_fusion.3', 'dynamic-update-slice.2', 'copy.1', 'sort.7')
  }
  assert kinds == {
    'dot_general.294': 'dot',
    'loop_fusion.3': 'fusion',
    'dynamic-update-slice.2': 'dynamic-update-slice',
    'copy.1': 'copy',
    'sort.7': 'other',
  }
  # 1 and 11 tokens: (growth of thread time) / 10 steps, in ms; wall likewise.
  res = {
    'lengths': [1, 11],
    'wall': {1: 0.5, 11: 0.6},
    'kinds': {'dot': [0.2, 0.4], 'fusion': [0.05, 0.06]},
    'top': [],
  }
  table = profile.format_decode_profile(res)
  assert '| dot | 20.00 |' in table and '| fusion | 1.00 |' in table
  assert '| **all ops** | 21.00 |' in table and '| 10.00 |' in table


def test_quantize_same_detections_by_hand():
  from benchmarks import quantize

  ref = '100 100 500 500 circle ; 600 600 900 900 square'
  # One coordinate moved by one bin: another string, the same detections.
  assert quantize._same_detections(ref, '100 101 500 500 circle ; 600 600 900 900 square')
  # A label changed, a box lost, or a box moved off its object (IoU 1/3): not the same.
  assert not quantize._same_detections(ref, '100 100 500 500 square ; 600 600 900 900 square')
  assert not quantize._same_detections(ref, '100 100 500 500 circle')
  assert not quantize._same_detections(ref, '300 100 700 500 circle ; 600 600 900 900 square')
