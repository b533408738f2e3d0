"""Documents rendered from data: ``docs/config.md`` (from the config models),
``docs/results.md`` and the README's results table (from ``results/``), ``docs/scale.md``
(from ``benchmarks/results/``). Each module's ``main`` writes its documents, or with ``--check``
fails when the committed text is not what the data renders to; ``scripts/render_*.py`` are
their command lines."""
