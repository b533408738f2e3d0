"""Render docs/scale.md from the measurements in benchmarks/results/scale.json and the inputs
in benchmarks/results/scale_assumptions.json: every number in the document comes from those two
files through the arithmetic below, which the document prints next to each projection.

    .venv/bin/python scripts/render_scale_doc.py           # write docs/scale.md
    .venv/bin/python scripts/render_scale_doc.py --check   # exit 1 if docs/scale.md is stale
    .venv/bin/python -m countclip_experiments.render.scale_doc [--check]   # the same

The benchmarks write scale.json (``--record``); see the "Regenerate" section of the output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from countclip_experiments.render import generated_doc
from countclip_experiments.render.generated_doc import REPO
from countclip_experiments.render.scale_measured import measured_table
from countclip_experiments.render.scale_projections import NODE_CORES, dur, load, n, projections

DOC = REPO / "docs" / "scale.md"


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
        f"{mach['cpus_usable']} usable cores ({mach['processor']}), a "
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


def main(argv: Sequence[str] | None = None) -> int:
    return generated_doc.main(lambda: {DOC: render(*load())}, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
