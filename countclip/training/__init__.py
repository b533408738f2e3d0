"""Fine-tuning with L = L_CLIP + λ·L_count (or L_count+), on CPU or under torchrun.

- :mod:`~countclip.training.losses` — :func:`counting_loss` and ``CountingClipLoss``;
- :mod:`~countclip.training.model` — open_clip models (the tiny CPU one is registered here);
- :mod:`~countclip.training.loader` — batches as a pure function of ``(seed, step, rank)``;
- :mod:`~countclip.training.loop` — :func:`train`, resumable bit-exactly after ``kill -9``;
- :mod:`~countclip.stages.train` — the train stage; ``python -m countclip.training`` runs the
  loop on shards without the pipeline.
"""
