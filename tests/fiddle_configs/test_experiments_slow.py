"""Slow tier of test_experiments.py: the paper sizes' abstract parameter counts (big traces)."""

import pytest

from pali_pax import param_count
from pali_pax.fiddle_configs import experiments
from pali_pax.model import PaliModel

pytestmark = pytest.mark.slow


def test_pali17b_parameter_counts_are_the_published_sizes():
  cfg = experiments.Pali17BPretrain().model_config()
  assert cfg.cls is PaliModel
  counts = param_count.component_counts(cfg)
  assert counts['vit'] == pytest.approx(3.9e9, rel=0.03)
  assert counts['mt5'] == pytest.approx(13e9, rel=0.03)
  assert counts['total'] == pytest.approx(17e9, rel=0.03)


def test_pali3b_parameter_counts_are_the_published_sizes():
  counts = param_count.component_counts(experiments.Pali3BPretrain().model_config())
  assert counts['vit'] == pytest.approx(1.8e9, rel=0.03)
  assert counts['mt5'] == pytest.approx(1.2e9, rel=0.03)
