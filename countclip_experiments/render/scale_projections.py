"""The projections of ``docs/scale.md``: the measurements of ``benchmarks/results/scale.json``
and the assumed inputs of ``benchmarks/results/scale_assumptions.json``, turned into the cost of
the full LAION-400M-sized run by the arithmetic below."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from countclip_experiments.render.generated_doc import REPO

RESULTS = REPO / "benchmarks" / "results"
NODE_CORES = 16


def load() -> tuple[dict[str, Any], dict[str, Any]]:
    measured = json.loads((RESULTS / "scale.json").read_text())
    raw = json.loads((RESULTS / "scale_assumptions.json").read_text())
    assumed = {k: v for k, v in raw.items() if not k.startswith("_")}
    missing = {"metadata", "captions", "download", "train", "dask"} - set(measured)
    if missing:
        sys.exit(f"scale.json lacks {sorted(missing)}: run those benchmarks with --record")
    return measured, assumed


def n(x: float, digits: int = 0) -> str:
    """A number with thousands separators."""
    return f"{x:,.{digits}f}"


def dur(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def projections(m: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    """Every projected quantity, with the arithmetic as text."""
    v = {k: a[k]["value"] for k in a}
    meta, cap, down, train, dask = (m[k] for k in ("metadata", "captions", "download", "train",
                                                   "dask"))  # fmt: skip
    p: dict[str, Any] = {}
    rows, parts = v["rows"], v["parts"]
    rows_part = rows / parts
    # Per-core rates from CPU seconds (all threads of the process): on a shared machine wall
    # time measures the neighbours too, CPU time mostly the work.
    p["rows_per_core"] = 1e6 / meta["stage1_cpu_us_per_row"]
    p["remote_rows_per_core"] = 1e6 / meta["remote_stage1"]["cpu_us_per_row"]
    p["captions_per_core"] = 1e3 / cap["candidates"]["parse_cpu_ms_per_caption"]
    p["images_per_core"] = 1 / down["cpu_s_per_image"]
    # --- stage 1: one part on one core (Dask: one DuckDB thread per part), remote read path
    p["meta_part_s"] = rows_part / p["remote_rows_per_core"]
    bandwidth = v["network_gbit_s"] * 1e9 / 8
    p["meta_net_s"] = v["metadata_gb"] * 1e9 / bandwidth
    # --- stage 2: one part's candidates on one core
    candidates = rows * v["candidate_share"]
    p["candidates"] = candidates
    p["cap_part_s"] = candidates / parts / p["captions_per_core"]
    # --- Dask waves over parts (bench_dask's model): start + serial + ceil(P/W) x part
    part_s = p["meta_part_s"] + p["cap_part_s"]
    waves = math.ceil(parts / NODE_CORES)
    fixed = dask["cluster_start_s"]["1"] + dask["serial_cpu_s"]
    p["data_cpu_s"] = fixed + waves * part_s
    p["data_serial_1w_s"] = fixed + parts * part_s
    p["data_s"] = p["data_cpu_s"] + p["meta_net_s"]  # no overlap: an upper bound
    p["waves"], p["part_s"], p["fixed_s"] = waves, part_s, fixed
    # --- stage 3: downloads, the smaller of the network-side and CPU-side rates
    counting_urls = candidates * v["accept_share"]
    common_urls = 4.0 * candidates  # metadata.common_ratio in configs/laion400m.yaml
    urls = counting_urls + common_urls
    cpu_rate = p["images_per_core"] * NODE_CORES
    net_rate = v["img2dataset_urls_per_s_node"]
    rate = min(cpu_rate, net_rate)
    p.update(
        counting_urls=counting_urls,
        common_urls=common_urls,
        urls=urls,
        dl_cpu_rate=cpu_rate,
        dl_rate=rate,
        dl_bound="network" if net_rate <= cpu_rate else "CPU",
        dl_s=urls / rate,
        counting_images=counting_urls * v["download_success"],
        common_images=common_urls * v["download_success"],
    )
    p["disk_gb"] = (p["counting_images"] + p["common_images"]) * v["image_kb"] / 1e6
    # --- stage 5: training FLOPs from the counted tower FLOPs (fwd x 3 for fwd + bwd)
    g = v["paper_gpu"]
    f = train["flops"]
    global_batch = g["gpus"] * g["batch_per_gpu"]
    counting_per_step = global_batch * g["counting_fraction"]
    text_rows = global_batch + counting_per_step * g["counterfactuals"]
    step_flops = 3e9 * (global_batch * f["image_fwd_gflops"] + text_rows * f["text_row_fwd_gflops"])
    train_counting = p["counting_images"] * (1 - g["val_fraction"])
    steps = g["epochs"] * math.ceil(train_counting / counting_per_step)
    cluster_flops = g["gpus"] * v["gpu_bf16_tflops"] * 1e12 * v["gpu_mfu"]
    p.update(
        global_batch=global_batch,
        counting_per_step=counting_per_step,
        text_rows=text_rows,
        step_flops=step_flops,
        steps=steps,
        train_s=steps * step_flops / cluster_flops,
        cluster_flops=cluster_flops,
        common_draws=steps * (global_batch - counting_per_step),
    )
    p["cpu_node_h"] = (p["data_s"] + p["dl_s"]) / 3600
    p["gpu_node_h"] = p["train_s"] / 3600
    p["cost_cpu"] = p["cpu_node_h"] * v["price_cpu_node_per_h"]
    p["cost_gpu"] = p["gpu_node_h"] * v["price_gpu_node_per_h"]
    stages = {
        "metadata + captions (Dask over parts)": p["data_s"],
        "download (img2dataset)": p["dl_s"],
        "training (torchrun DDP)": p["train_s"],
    }
    p["stages"] = stages
    p["bottleneck"] = max(stages, key=stages.get)  # type: ignore[arg-type]
    return p
