"""CountBench and the zero-shot check: does the model count, and did it forget anything?

- :mod:`~countclip.evaluation.countbench` — CountBench in its real JSON format, downloaded
  like the training data;
- :mod:`~countclip.evaluation.scoring` — the paper's protocol: nine captions per image, argmax;
- :mod:`~countclip.evaluation.zeroshot` — CLIP_benchmark-style zero-shot classification;
- :mod:`~countclip.evaluation.stage` — the evaluate stage; :mod:`~countclip.evaluation.report`
  compares models; :mod:`~countclip.evaluation.promotion` decides a retrain.
"""
