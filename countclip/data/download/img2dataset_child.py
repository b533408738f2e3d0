"""The img2dataset child of one download pass (:mod:`countclip.data.download.runner` runs it
*by path*, ``python -P <this file> <args.json> <parent pid> <engine json>``).

Run by path, not with ``-c``, for one reason: img2dataset starts its logger process and its
pool workers with the ``spawn`` method, and a spawned process re-runs its parent's main
*file* (as ``__mp_main__``) before it unpickles its work. So the top level of this file,
and nothing else, runs first in every process of the pass: that is where torch is kept out.
img2dataset never uses torch, but webdataset imports it when it is installed (its writer
would only need it for ``.pth`` fields, and it falls back to stand-ins when the import fails
with ``ModuleNotFoundError``). torch is ~half of img2dataset's import time and every pass
imports img2dataset three times (this process, the logger, each pool worker): without torch a
pass starts a few seconds sooner on 2 cores (benchmarks/bench_download.py measures it).

``-P`` keeps this file's folder off ``sys.path`` (its neighbours' names, e.g. ``results``,
must not shadow anything), and spawn passes the flag on to the processes it starts.
Everything below ``__main__`` runs in the child only: it dies with its parent and takes its
process group (img2dataset's workers) with it; see the runner's docstring.
"""

import sys

for _name in ("torch", "torchvision", "torchaudio"):
    sys.modules.setdefault(_name, None)  # ``import torch`` raises ModuleNotFoundError


def _main() -> None:
    import ctypes
    import json
    import os
    import signal
    import threading
    import time

    parent = int(sys.argv[2])

    def take_group_down(*_: object) -> None:  # img2dataset's workers, or local Ray, share it
        os.killpg(0, signal.SIGKILL)

    signal.signal(signal.SIGTERM, take_group_down)
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the caller died before prctl took effect
        take_group_down()

    def watchdog() -> None:  # fallback: the handler needs the main thread back in Python
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                take_group_down()

    threading.Thread(target=watchdog, daemon=True).start()
    with open(sys.argv[1]) as f:
        kwargs = json.load(f)
    engine = json.loads(sys.argv[3])
    if engine["distributor"] == "ray":  # img2dataset submits its shard tasks to this cluster
        joined = threading.Event()

        def give_up(why: str) -> None:
            print(f"COUNTCLIP_CLUSTER_ERROR {engine['setting']}: {why}", flush=True)
            os._exit(engine["exit_status"])

        def deadline() -> None:  # ray.init retries an address that does not answer for minutes
            if not joined.wait(engine["connect_seconds"]):
                give_up(f"no Ray cluster answered within {engine['connect_seconds']:g} s")

        threading.Thread(target=deadline, daemon=True).start()
        import ray

        try:
            ray.init(**engine["ray_init"])
        except Exception as exc:
            give_up(f"{type(exc).__name__}: {exc}")
        joined.set()
    from img2dataset import download

    download(**kwargs)


if __name__ == "__main__":
    _main()
