"""img2dataset downloads into webdataset shards, resumable, with every URL accounted for.

- :mod:`~countclip.data.download.passes` — :func:`download_urls` (passes over transient
  failures) and the download stage;
- :mod:`~countclip.data.download.runner` — one img2dataset pass in a supervised child process;
- :mod:`~countclip.data.download.results` — reading back what img2dataset wrote: failure
  classes, finished shards, one final row per input sample.
"""
