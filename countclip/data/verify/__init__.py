"""Stage 3b: image-side count verification of the downloaded counting set.

Paiss et al. keep a counting pair only when an object detector sees the caption's count in the
image (their Table 1: the counting loss gains ~25 points of CountBench accuracy over naive text
filtering). :mod:`counters` holds the one interface, :mod:`classical` and :mod:`detector` two
counters, :mod:`stage` the resumable stage and :mod:`quality` the scoring of its decisions
against a ground truth.
"""
