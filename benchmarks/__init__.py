"""Benchmarks of pali_pax on the local machine: `python -m benchmarks.run --help`.

Optional dependencies (torch, transformers, matplotlib; requirements/bench-lock.txt)
are imported only by the modules that need them (peer_torch, report's plot).
"""
