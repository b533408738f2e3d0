"""The "measured here" table of ``docs/scale.md``: each benchmark's recorded rates, and the
load the machine was under while it measured."""

from __future__ import annotations

from typing import Any

from countclip_experiments.render.scale_projections import n


def load_note(entry: dict[str, Any]) -> str:
    """The load average before and after the measurement (the recorded process lists stay in
    benchmarks/results/scale.json: a reader needs to know the machine was busy, not by what)."""
    before = entry["load_before"]["load_avg_1_5_15"][0]
    after = entry["load_after"]["load_avg_1_5_15"][0]
    return f"load {before:.1f} → {after:.1f}"


def measured_table(m: dict[str, Any]) -> list[str]:
    meta, cap, down, train, dask = (m[k] for k in ("metadata", "captions", "download", "train",
                                                   "dask"))  # fmt: skip
    remote = meta["remote_stage1"]
    vs_local = remote["rows_per_s"] / meta["stage1_rows_per_s"]
    f = train["flops"]
    c = cap["candidates"]
    return [
        "| stage | measured | wall rate here | CPU cost → rate per core | engine that spreads it "
        "| load while measured |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| 1 metadata | stage 1, {n(meta['rows'])} local rows, {meta['duckdb_threads']} DuckDB "
        f"threads | {n(meta['stage1_rows_per_s'])} rows/s (the candidate query alone "
        f"{meta['ratio_candidates_over_raw']:.2f}× a raw regexp count) | "
        f"{meta['stage1_cpu_us_per_row']:.2f} µs/row → **{n(1e6 / meta['stage1_cpu_us_per_row'])}"
        f" rows/s** | DuckDB threads; Dask workers over parts | {load_note(meta)} |",
        f"| 1 metadata, remote | the same file over loopback HTTP (fsspec, Range requests) | "
        f"{n(remote['rows_per_s'])} rows/s ({vs_local:.2f}× local); fetched "
        f"{remote['bytes_fetched_over_file']:.2f}× the file in {remote['requests']} requests | "
        f"{remote['cpu_us_per_row']:.2f} µs/row (with the server's threads) → "
        f"**{n(1e6 / remote['cpu_us_per_row'])} rows/s** | as above | same run |",
        f"| 2 captions | spaCy parser, all rules, {n(c['n'])} candidate captions, 1 process | "
        f"{n(c['parse_per_s'])} captions/s | {c['parse_cpu_ms_per_caption']:.3f} ms/caption → "
        f"**{n(1e3 / c['parse_cpu_ms_per_caption'])} captions/s** | Dask workers over parts | "
        f"{load_note(cap)} |",
        f"| 3 download | {n(down['urls'])} URLs from the loopback image server, "
        f"{down['processes']} processes × {down['threads']} threads | "
        f"{down['stage_images_per_s']:.0f} images/s (stage / raw img2dataset "
        f"{down['ratio_stage_over_cli']:.2f}) | {down['cpu_s_per_image'] * 1e3:.1f} ms/image → "
        f"**{n(1 / down['cpu_s_per_image'])} images/s** (resize + encode; no real network) | "
        f"img2dataset distributor: multiprocessing on a node; Ray across nodes | "
        f"{load_note(down)} |",
        f"| 5 training | tiny model, batch {train['batch']}, CPU, {train['threads']} threads | "
        f"{train['step_samples_per_s']:.0f} samples/s (CountCLIP step "
        f"{train['ratio_countclip_over_clip']:.2f}× a plain CLIP step) | — | torchrun DDP | "
        f"{load_note(train)} |",
        f"| 5 training | {f['model']} forward FLOPs, counted (no GPU here) | — | "
        f"**{f['image_fwd_gflops']:.2f} GFLOP per image, {f['text_row_fwd_gflops']:.2f} GFLOP "
        f"per {f['text_context']}-token text row** | torchrun DDP | — |",
        f"| 1+2 scale-out | {dask['parts']} parts × {n(dask['rows_per_part'])} rows, 1 vs 2 Dask "
        f"workers | **{dask['speedup_work_2_over_1']:.2f}× speed-up** of the work "
        f"({dask['work_s']['1']:.1f} s → {dask['work_s']['2']:.1f} s; with cluster start "
        f"{dask['speedup_wall_2_over_1']:.2f}×) | one part {dask['part_cpu_s_median']:.2f} s "
        f"CPU, serial {dask['serial_cpu_s']:.2f} s CPU | Dask LocalCluster | {load_note(dask)} |",
    ]
