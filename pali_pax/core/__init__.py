"""The leaf core: the batch contract, errors, jax shims, tree and abstract-parameter helpers.

Nothing here imports another part of pali_pax.
"""
