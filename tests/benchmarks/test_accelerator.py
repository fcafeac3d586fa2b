"""benchmarks.accelerator's peak lookup and report (its run: test_no_tensorflow_slow.py)."""

from benchmarks import accelerator


def test_datasheet_peak_by_device_kind():
  assert accelerator.datasheet_peak('NVIDIA H100 80GB HBM3') == 989.4e12
  assert accelerator.datasheet_peak('NVIDIA H200') == 989.4e12
  assert accelerator.datasheet_peak('NVIDIA A100-SXM4-40GB') == 312e12
  assert accelerator.datasheet_peak('cpu') is None


def test_table_gives_each_denominators_mfu():
  timing = {'median': 0.02}
  rec = {
    'device_kind': 'NVIDIA H100 80GB HBM3',
    'platform': 'gpu',
    'versions': {'jax': '0.11.2'},
    'peaks': {'datasheet': 989.4e12, 'measured_matmul': 790e12},
    'train': [
      dict(
        spec='small',
        batch=64,
        dtype='bfloat16',
        timing=timing,
        tflop_per_s=195.0,
        mfu={'datasheet': 195 / 989.4, 'measured_matmul': None},
      ),
    ],
    'decode': [
      dict(spec='small', batch=8, calls={'1': timing, '16': {'median': 0.05}}, per_token_s=0.002)
    ],
  }
  text = accelerator.table(rec)
  assert '| small | 64 | bfloat16 | 20.0 ms | 195.0 | 20% | - |' in text
  assert '| decode spec | batch | 1 tokens | 16 tokens | per token |' in text
  assert '| small | 8 | 20.0 ms | 50.0 ms | 2.00 ms |' in text
