"""``python scripts/render_config_reference.py [--check]``: ``docs/config.md`` from the config
models (the renderer is :mod:`countclip_experiments.render.config_reference`; ``--check`` fails
when the page is stale)."""

from countclip_experiments.render.config_reference import main

if __name__ == "__main__":
    raise SystemExit(main())
