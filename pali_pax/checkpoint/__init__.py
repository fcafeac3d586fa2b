"""Pax checkpoints of PaLI: one concept per module.

    layout     where things are in a job dir: checkpoints/checkpoint_<8 digits>, the
               step-directory regex, saved variable shapes and arrays (zarr metadata)
    integrity  per-process checksum manifests: written by the process that wrote the
               files, verified split across processes
    saving     paxml's checkpoint handler with those manifests (`install`)
    restoring  before paxml restores: corrupt newest steps are moved aside
    reading    the intact step to read (`intact_latest_step`, `find_step`) and the
               model params of a step (`restore_params`), for the predictor, eval,
               export and INIT_FROM alike
    job_meta   JOB/pali_pax.json: the experiment, overrides and vocabulary a job used
    frozen     steps that leave out a job's frozen params (a LoRA job's base): they are
               read from the base step recorded in pali_pax.json, verified intact

The package imports nothing above it (no experiments registry): functions that need
an experiment take the experiment object.
"""
