"""``python scripts/render_scale_doc.py [--check]``: ``docs/scale.md`` from the measurements in
``benchmarks/results/`` (the renderer is :mod:`countclip_experiments.render.scale_doc`;
``--check`` fails when the page is stale)."""

from countclip_experiments.render.scale_doc import main

if __name__ == "__main__":
    raise SystemExit(main())
