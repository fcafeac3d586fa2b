"""paxml's input specs for model init, from the batch sizes (no input pipeline built).

paxml's default provider (`DatasetInputSpecsProvider`) instantiates the training
input and reads one batch. For a seqio mixture that traces every task's
pipeline once more before the real train input does (~20 s of the CPU demo's
start-up); paxml's own warning recommends an explicit provider. The first real
batch is still checked against these specs (`enforce_input_specs`, on by default).
"""

from praxis import base_input, py_utils

from pali_pax.core import batch as batch_lib


class BatchSpecsProvider(base_input.BaseInputSpecsProvider):
  """`batch_lib.batch_specs` of the train input's sizes.

  Attributes:
    image_size: pixels per side (H = W).
    batch_size: rows per process (praxis `batch_size` of the train input).
    input_len: prompt tokens Ti.
    target_len: target tokens To.
  """

  image_size: int = 224
  batch_size: int = 1
  input_len: int = 8
  target_len: int = 8

  def get_input_specs(self) -> py_utils.NestedMap:
    """ShapeDtypeStructs of every `batch_lib.FIELDS` entry, [batch_size, ...]."""
    return batch_lib.batch_specs(self.image_size, self.batch_size, self.input_len, self.target_len)
