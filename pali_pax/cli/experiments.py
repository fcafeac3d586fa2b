"""`pali-pax experiments`: the registered PaxML experiments, one line each."""

import argparse

from pali_pax.fiddle_configs import registry


def add_arguments(p: argparse.ArgumentParser) -> None:
  """`pali-pax experiments` takes no flags."""


def run(args: argparse.Namespace) -> int:
  """Prints `registry.describe_experiments()`."""
  print(registry.describe_experiments())
  return 0
