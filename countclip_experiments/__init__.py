"""The science around CountCLIP: the counting experiment and its arms, tuning on validation
data (WiSE-FT sweeps included), the validation records, the confirmatory ledger, the cue-scale
study, and the documents rendered from their raw results (``countclip_experiments.render``).

Everything here runs the pipeline through :mod:`countclip.pipeline` and a runner, never a stage
function directly, so an experiment computes exactly the stages (and fingerprints) the flows do:

    python -m countclip_experiments.counting --config configs/bench-counting.yaml --seeds 0 1 2
    python -m countclip_experiments.tuning --arms control countclip --record NAME --note "..." \\
        [--wise-ft-alphas 0.5 0.8]
    python -m countclip_experiments.counting --countbench confirmatory ...  # registers in
        # results/ledger.json first (countclip_experiments.ledger)
    python -m countclip_experiments.records --name NAME data/<root>/train/<fingerprint> ...
    python -m countclip_experiments.cue_scale

Speed benchmarks stay in ``benchmarks/`` (scripts, not installed).
"""
