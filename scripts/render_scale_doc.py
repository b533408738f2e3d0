"""Render docs/scale.md from the measurements in benchmarks/results/scale.json and the inputs
in benchmarks/results/scale_assumptions.json: every number in the document comes from those two
files through the arithmetic below, which the document prints next to each projection.

    .venv/bin/python scripts/render_scale_doc.py           # write docs/scale.md
    .venv/bin/python scripts/render_scale_doc.py --check   # exit 1 if docs/scale.md is stale

The benchmarks write scale.json (``--record``); see the "Regenerate" section of the output.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import generated_doc

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "scale.md"
NODE_CORES = 16


REAL_DATA = [
    "## 5. The real metadata: Re-LAION, read without extension downloads",
    "",
    "LAION withdrew the original LAION-400M and LAION-5B metadata in December 2023 and asks "
    "users to move to the filtered re-release, **Re-LAION-5B** (August 2024). "
    "`configs/laion400m.yaml` reads its English research-safe subset, "
    "[`laion/relaion2B-en-research-safe`]"
    "(https://huggingface.co/datasets/laion/relaion2B-en-research-safe) "
    "on the Hugging Face Hub, first 25 parts (a LAION-400M-sized slice). The dataset is gated: "
    "accept its terms on the dataset page and `export HF_TOKEN=...`.",
    "",
    "- **How it is read**: DuckDB never installs an extension (`autoinstall_known_extensions` is "
    "off). Each remote protocol gets an fsspec filesystem registered on the connection: "
    "`http(s)://` through fsspec's HTTP filesystem (aiohttp; HEAD for sizes, Range requests for "
    "bytes, `metadata.timeout` per request), `hf://` through huggingface_hub's `HfFileSystem` "
    "(`pip install 'countclip[hf]'`), other fsspec protocols (`s3://` with s3fs, ...) when "
    "installed (untested). A remote part's mapped columns are copied once into the stage's work "
    "directory, then scanned locally.",
    "- **Naming the files**: HTTP cannot list a directory, so an `http(s)` source is a list of "
    "URLs or a brace range (`.../part-{00000..00031}.parquet`); a `*` in an http URL is refused "
    "with that advice. `hf://` (and `s3://`) globs are listed by the filesystem.",
    "- **Failures**: a 404 is `MetadataSourceNotFound` naming the URL (not retried); 401/403 "
    "or an offline hub is a `MetadataError` saying what to do; 5xx, 429, refused connections "
    "and timeouts are `RemoteSourceError` naming the URL, which the metadata task retries with "
    "backoff.",
    "",
    "Re-LAION's columns differ from LAION-400M's; `metadata.columns` maps them, in SQL "
    "(`countclip/sql/laion_source.sql`, the names bound as values):",
    "",
    "| LAION-400M | Re-LAION (as configured) | status |",
    "| --- | --- | --- |",
    "| URL | `url` | seen in third-party code reading these parts; not checked offline |",
    "| TEXT | `caption` | as above |",
    "| WIDTH, HEIGHT | `original_width`, `original_height` | as above |",
    "| similarity | `similarity` | as above |",
    "| SAMPLE_ID | none: derived, 60 bits of md5(URL, TEXT) | Re-LAION has `key` and `hash`; "
    "their types and uniqueness were not checked, so neither is used |",
    "| LICENSE | none (NULL) | no such column known |",
    "| NSFW | none (NULL), `allowed_nsfw: null` | research-safe is already filtered on the "
    "`punsafe` score; `relaion2B-en-research` is not |",
    "",
    "A wrong name fails before any scan, naming the file and the column. **URL blocklists** "
    "(`metadata.exclude`: text, CSV or parquet files or URLs of URLs, or of md5/sha256 hex "
    "digests of URLs) are anti-joined in DuckDB before every other filter, so nothing on a list "
    "reaches the download; the manifest's `stats.dropped.excluded` counts the rows removed and "
    "`stats.excluded_by_list` the rows each list holds.",
    "",
]


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


def short(cmd: str) -> str:
    """A process's command line as a few words: the program, or python's script or module."""
    words = cmd.split()
    if not words:
        return "?"
    prog = Path(words[0]).name
    if not prog.startswith("python") or len(words) < 2:
        return " ".join([prog, *words[1:2]])
    if words[1] == "-m" and len(words) > 2:
        return words[2]
    if words[1].startswith("-"):
        return f"python {words[1]}"
    return Path(words[1]).name


def load_note(entry: dict[str, Any]) -> str:
    before = entry["load_before"]["load_avg_1_5_15"][0]
    after = entry["load_after"]["load_avg_1_5_15"][0]
    busy = entry["load_before"]["busy_processes"] + entry["load_after"]["busy_processes"]
    others = ", ".join(sorted({short(b["cmd"]) for b in busy})[:5]) or "none seen"
    return f"load {before:.1f} → {after:.1f}; others busy: {others}"


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


def render(m: dict[str, Any], a: dict[str, Any]) -> str:
    p = projections(m, a)
    v = {k: a[k]["value"] for k in a}
    meta, dask, train = m["metadata"], m["dask"], m["train"]
    mach = meta["machine"]
    g = v["paper_gpu"]
    f = train["flops"]
    remote_factor = meta["remote_stage1"]["rows_per_s"] / meta["stage1_rows_per_s"]
    serial_cpu, part_cpu = dask["serial_cpu_s"], dask["part_cpu_s_median"]
    dask_serial_share = serial_cpu / (serial_cpu + dask["parts"] * part_cpu)
    amdahl_16 = 1 / (dask_serial_share + (1 - dask_serial_share) / NODE_CORES)
    load_dask = dask["load_before"]["load_avg_1_5_15"][0]
    waves = math.ceil(v["parts"] / NODE_CORES)
    out: list[str] = []
    w = out.append
    w("# Scale plan: the full LAION-400M-sized run")
    w("")
    w("<!-- Generated by scripts/render_scale_doc.py from benchmarks/results/scale.json and")
    w("     benchmarks/results/scale_assumptions.json. Do not edit by hand. -->")
    w("")
    w(
        "What each stage costs on this machine (**measured**), and what the full run costs on "
        f"named hardware (**projected**, with the arithmetic shown). Measured on "
        f"{mach['cpus_usable']} usable cores ({mach['processor']}, {mach['platform']}), a "
        "machine shared with other engineers: every measurement says the load it ran under, "
        "and rates per core here are pessimistic for a quiet node."
    )
    w("")
    w("## 1. Measured here")
    w("")
    out += measured_table(m)
    w("")
    w(
        f"Scale-out of the data stages (bench_dask, {dask['parts']} parts of "
        f"{n(dask['rows_per_part'])} rows): measured in wall time, 2 workers against 1 gave "
        f"**{dask['speedup_work_2_over_1']:.2f}×** on the work (cluster start excluded) at load "
        f"{load_dask:.1f} on {mach['cpus_usable']} cores: with the cores already oversubscribed "
        "by other processes, a second worker cannot get a core of its own, so this number says "
        "more about the neighbours than about Dask; re-run it on a quiet machine. In CPU "
        f"seconds, which the load hardly changes: one part costs {part_cpu:.2f} s in its "
        f"worker, and the serial part (scheduler, gathering, the caption merge, in the client "
        f"process) {serial_cpu:.2f} s, a serial share of {dask_serial_share:.1%} of the work. "
        f"Amdahl's law then bounds {NODE_CORES} workers at 1 / ({dask_serial_share:.3f} + "
        f"{1 - dask_serial_share:.3f}/{NODE_CORES}) = **{amdahl_16:.1f}×** for these parts; "
        "with parts the size of LAION's (100× the rows) the serial share shrinks further, and "
        f"the limit is the granularity: {v['parts']} parts on {NODE_CORES} workers run in "
        f"{waves} waves, {v['parts'] / waves:.0f}× the one-worker rate at best. Starting the "
        f"cluster and warming its workers took {dask['cluster_start_s']['1']:.1f} s (1 worker) "
        f"and {dask['cluster_start_s']['2']:.1f} s (2 workers) here."
    )
    w("")
    w("## 2. The workload")
    w("")
    w("| input | value | source |")
    w("| --- | --- | --- |")
    for key, item in a.items():
        val = item["value"]
        shown = json.dumps(val) if isinstance(val, dict) else (n(val) if isinstance(val, int)
                                                               else str(val))  # fmt: skip
        w(f"| `{key}` | {shown} | {item['source']} |")
    w("")
    w(
        f"Derived (projection): {n(v['rows'])} rows × {v['candidate_share']} = "
        f"**{n(p['candidates'])} stage-1 candidates**; × {v['accept_share']} = "
        f"{n(p['counting_urls'])} counting URLs; common sample 4.0 × candidates "
        f"(`metadata.common_ratio`) = {n(p['common_urls'])} URLs; {n(p['urls'])} URLs in all. "
        f"At {v['download_success']:.0%} success: **{n(p['counting_images'])} counting images** "
        f"and {n(p['common_images'])} common images, {n(p['disk_gb'])} GB at "
        f"{v['image_kb']} KB each. (On the synthetic benchmark mix, stage 1 keeps "
        f"{meta['stage1_kept_share']:.1%} of rows and the parser {meta['stage2_accept_share']:.0%} "
        "of those: synthetic captions state counts far more often than LAION's.)"
    )
    w("")
    w("## 3. Projection: the full run")
    w("")
    w(
        f"Hardware: one **{NODE_CORES}-core node** for stages 1-4, one **{v['gpu']} node** "
        "running `configs/paper-gpu.yaml` for training. All numbers in this section are "
        "projections."
    )
    w("")
    w("| stage | engine | work | time (projected) |")
    w("| --- | --- | --- | --- |")
    w(
        f"| 1+2 metadata + captions | Dask, {NODE_CORES} workers × 1 DuckDB thread, parts of "
        f"{n(v['rows'] / v['parts'])} rows | {v['parts']} parts, {v['metadata_gb']} GB over the "
        f"network once | {dur(p['data_s'])} |"
    )
    w(
        f"| 3 download | img2dataset, multiprocessing, {NODE_CORES} processes | {n(p['urls'])} "
        f"URLs at {n(p['dl_rate'])}/s ({p['dl_bound']}-bound, see below) | **{dur(p['dl_s'])}** |"
    )
    w("| 4 λ | DuckDB over the shards' parquet | one small query | seconds |")
    w(
        f"| 5 training | torchrun DDP, {g['gpus']} GPUs | {n(p['steps'])} steps × "
        f"{n(p['global_batch'])} samples | {dur(p['train_s'])} |"
    )
    w("| 6 CountBench | one GPU | 540 images | seconds |")
    w("")
    w(
        f"Cost (prices are assumptions): CPU node {p['cpu_node_h']:.1f} h × "
        f"${v['price_cpu_node_per_h']:.2f}/h = **${p['cost_cpu']:.0f}**; GPU node "
        f"{p['gpu_node_h']:.2f} h × ${v['price_gpu_node_per_h']:.0f}/h = "
        f"**${p['cost_gpu']:.0f}**; together **${p['cost_cpu'] + p['cost_gpu']:.0f}**, plus "
        f"{n(p['disk_gb'])} GB of disk for the images."
    )
    w("")
    w("### The arithmetic")
    w("")
    w(
        f"- **Stage 1, one part**: {n(v['rows'] / v['parts'])} rows ÷ "
        f"{n(p['remote_rows_per_core'])} rows/s per core (the remote read path's CPU cost, "
        f"measured; local parquet {n(p['rows_per_core'])}) = {p['meta_part_s']:.0f} s. The "
        f"network: {v['metadata_gb']} GB ÷ {v['network_gbit_s']} Gbit/s = "
        f"{dur(p['meta_net_s'])} for all parts (a remote part's mapped columns are copied once, "
        "then scanned three times locally)."
    )
    w(
        f"- **Stage 2, one part**: {n(p['candidates'] / v['parts'])} candidates ÷ "
        f"{n(p['captions_per_core'])} captions/s per core = {p['cap_part_s']:.0f} s."
    )
    w(
        f"- **Dask over parts**: {v['parts']} parts on {NODE_CORES} workers = {p['waves']} waves; "
        f"start + serial ({p['fixed_s']:.0f} s, bench_dask) + {p['waves']} × "
        f"{p['part_s']:.0f} s = {dur(p['data_cpu_s'])} (one worker would take "
        f"{dur(p['data_serial_1w_s'])}, {p['data_serial_1w_s'] / p['data_cpu_s']:.1f}× as "
        "long), plus "
        f"{dur(p['meta_net_s'])} of network if none of it overlaps = {dur(p['data_s'])}. It "
        "assumes a part runs as fast beside 15 others as alone here (no memory-bandwidth or "
        "disk contention), and per-core rates from a loaded 2-core machine."
    )
    w(
        f"- **Download**: CPU ceiling {n(p['images_per_core'])} images/s per core × "
        f"{NODE_CORES} = {n(p['dl_cpu_rate'])}/s (resize + encode, measured against the "
        "loopback server: no DNS, no slow hosts); img2dataset's published rate for a "
        f"well-connected node {n(v['img2dataset_urls_per_s_node'])}/s; the smaller, "
        f"{n(p['dl_rate'])}/s: {n(p['urls'])} ÷ {n(p['dl_rate'])} = {dur(p['dl_s'])}."
    )
    w(
        f"- **Training**: per step {n(p['global_batch'])} images × "
        f"{f['image_fwd_gflops']:.2f} GFLOP + {n(p['text_rows'])} text rows "
        f"({n(p['global_batch'])} captions + {p['counting_per_step']:.0f} counting × "
        f"{g['counterfactuals']} counterfactuals) × {f['text_row_fwd_gflops']:.2f} GFLOP, × 3 "
        f"for forward + backward = {p['step_flops'] / 1e12:.1f} TFLOP (text rows counted at the "
        "full 77-token context: the training loop trims padding, so this is an upper bound). "
        f"Steps: {g['epochs']} epochs × {n(p['counting_images'] * (1 - g['val_fraction']))} "
        f"counting training images ÷ {p['counting_per_step']:.0f} a step = {n(p['steps'])}. "
        f"Time: {n(p['steps'])} × {p['step_flops'] / 1e12:.1f} TFLOP ÷ ({g['gpus']} × "
        f"{v['gpu_bf16_tflops']} TFLOP/s × {v['gpu_mfu']:.0%} MFU) = {dur(p['train_s'])}. "
        f"The common images are drawn {n(p['common_draws'])} times: each about "
        f"{p['common_draws'] / max(p['common_images'], 1):.1f}×."
    )
    w("")
    w("## 4. Where it breaks first")
    w("")
    ranked = sorted(p["stages"].items(), key=lambda kv: -kv[1])
    w(
        f"**The first bottleneck is the {ranked[0][0]}**: {dur(ranked[0][1])}, against "
        + ", ".join(f"{dur(t)} for {name}" for name, t in ranked[1:])
        + "."
    )
    w("")
    if p["bottleneck"].startswith("download"):
        each = p["common_draws"] / max(p["common_images"], 1)
        smaller = (p["counting_urls"] + p["common_urls"] / 4) / p["urls"]
        w(
            f"- Most of it is the common sample: {n(p['common_urls'])} of {n(p['urls'])} URLs "
            f"({p['common_urls'] / p['urls']:.0%}), from `metadata.common_ratio: 4.0`. Training "
            f"draws each common image about {each:.1f} times at this size; with a ratio of 1.0 "
            f"the download falls to about {smaller:.0%} and each common image is drawn about "
            f"{each * 4:.0f} times. Whether that repetition "
            "costs accuracy is a question for the recipe, not for this plan."
        )
        bound = (
            "the CPU (resizing and encoding: more cores, or fewer pixels, help)"
            if p["dl_bound"] == "CPU"
            else "the network and the image hosts (DNS, slow servers), not the CPU: a fast DNS "
            "resolver matters more than cores (img2dataset's README)"
        )
        w(
            "- It spreads across nodes with img2dataset's own distributors: "
            "`download.distributor: ray` ([distributed-downloads.md](distributed-downloads.md); "
            "a cluster of N nodes divides the time by "
            f"~N: the work is independent URL shards). On one node it is bound by {bound}."
        )
    w(
        "- Stage 1's remote read runs through Python (fsspec) at "
        f"{remote_factor:.2f}× the local rate on loopback; on a real link the network "
        f"({dur(p['meta_net_s'])} at {v['network_gbit_s']} Gbit/s) dominates it. A local "
        "mirror of the parts (a list or brace range in `metadata.source`) removes it from "
        "every fresh data root."
    )
    w(
        "- Memory: each Dask worker's DuckDB gets `metadata.memory_limit / dask.workers` "
        "(32 GB / 16 = 2 GB in configs/laion400m.yaml) and spills beyond it; the local copy of "
        "a remote part's columns needs about that part's size on local disk while it runs."
    )
    w("")
    out += REAL_DATA
    w("## 6. What is not measured")
    w("")
    w(
        "- No GPU was available to this run: training time is a projection from counted FLOPs "
        "and an assumed utilisation. The first paper-gpu epoch gives the real number "
        "(`train` manifest `stats`)."
    )
    w(
        "- The real metadata was not read (offline): the candidate and acceptance shares, the "
        "download success rate and Re-LAION's column names are assumptions until the first "
        "real part runs (its manifests hold every one of them)."
    )
    w(
        "- img2dataset's rate is its authors' claim for a well-connected node; the loopback "
        "measurement here only bounds the CPU side."
    )
    w("")
    w("## Regenerate")
    w("")
    w("```")
    w(".venv/bin/python benchmarks/bench_metadata.py --full --remote --record")
    w(".venv/bin/python benchmarks/bench_captions.py --record")
    w(".venv/bin/python benchmarks/bench_download.py --n 3000 --record")
    w(".venv/bin/python benchmarks/bench_train.py --flops ViT-B-32 --record")
    w(".venv/bin/python benchmarks/bench_dask.py --parts 8 --rows 200000 --repeats 2 --record")
    w(".venv/bin/python scripts/render_scale_doc.py")
    w("```")
    w("")
    w(
        "Recorded runs: "
        + "; ".join(
            f"{k} at {m[k]['when']} (commit {m[k]['commit']})"
            for k in ("metadata", "captions", "download", "train", "dask")
        )
        + "."
    )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(generated_doc.main(lambda: {DOC: render(*load())}, __doc__))
