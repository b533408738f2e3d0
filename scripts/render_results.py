"""``python scripts/render_results.py [--check]``: ``docs/results.md`` and the README's results
table from the raw results under ``results/`` (the renderer is
:mod:`countclip_experiments.render.results`; ``--check`` fails when a document is stale)."""

from countclip_experiments.render.results import main

if __name__ == "__main__":
    raise SystemExit(main())
