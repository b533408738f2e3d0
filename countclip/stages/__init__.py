"""The pipeline's stages, one module each, named for the stage.

Each module holds its stage's ``plan_*`` (the stage's identity for given inputs: where it
writes, how to tell it is done) and ``run_*`` (build it, or return the finished manifest) and
nothing else: the work itself lives in :mod:`countclip.data`, :mod:`countclip.training`,
:mod:`countclip.evaluation` and, for the offline world, :mod:`countclip.synthetic`.
:mod:`countclip.stages.base` is the one stage helper. The order in which the stages run is
written once, in :mod:`countclip.pipeline`.
"""
