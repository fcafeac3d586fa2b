"""The experiment and pinned sizes of the tests' tiny Pax job dir (`tiny_pax_job` in conftest).

Pinned through the experiment's own overrides (recorded in the job dir and honoured on
load), so the job keeps matching its checkpoints whatever size the experiment moves to.
"""

EXP = 'PaliTinySynthetic'
OVERRIDES = {'MODEL': 'tiny', 'IMAGE_SIZE': 32, 'VOCAB_SIZE': 2100}
