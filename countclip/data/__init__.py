"""From LAION metadata to a counting dataset: the work of the data stages.

- :mod:`countclip.data.metadata_query` — DuckDB over LAION-400M parquet -> counting candidates
  and a common (non-counting) sample (queries in ``sql/``); :mod:`countclip.data.source` and
  :mod:`countclip.data.remote_parquet` find and read the source, local or remote;
- :mod:`countclip.data.captions` — the spaCy caption parser (count, number span,
  counterfactuals) and the tables the caption stage writes;
- :mod:`countclip.data.download` — img2dataset into webdataset shards, every URL accounted for;
- :mod:`countclip.data.verify` — object counters and the per-shard count check;
- :mod:`countclip.data.lambdas` — class frequencies of what was kept -> λ per count.

The stages that run this work, and their identities, are :mod:`countclip.stages`.
"""
