"""CountBench and the zero-shot check: does the model count, and did it forget anything?

- :mod:`~countclip.evaluation.countbench` — CountBench in its real JSON format, downloaded
  like the training data;
- :mod:`~countclip.evaluation.scoring` — the paper's protocol: nine captions per image, argmax;
- :mod:`~countclip.evaluation.countbench_scores` — one model scored on the downloaded images;
- :mod:`~countclip.evaluation.zeroshot` — CLIP_benchmark-style zero-shot classification;
- :mod:`~countclip.evaluation.cues` — cue-only classifiers (object size, area, spread);
- :mod:`~countclip.evaluation.statistics` — paired bootstrap CIs and McNemar's test;
- :mod:`~countclip.evaluation.report` compares models; :mod:`~countclip.evaluation.promotion`
  decides a retrain.
"""
