"""From LAION metadata to a counting dataset: the build's stages, in pipeline order.

- :mod:`countclip.data.metadata` — DuckDB over LAION-400M parquet -> counting candidates and a
  common (non-counting) sample (queries in ``sql/``);
- :mod:`countclip.data.captions` — the spaCy caption parser (count, number span,
  counterfactuals) and the caption stage;
- :mod:`countclip.data.download` — img2dataset into webdataset shards, every URL accounted for;
- :mod:`countclip.data.lambdas` — class frequencies of what was downloaded -> λ per count.

Each ``run_*_stage`` function takes upstream manifests, its config and the data root, and
returns its own manifest (:mod:`countclip.stage`).
"""
