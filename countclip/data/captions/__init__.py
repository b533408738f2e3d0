"""Captions that state a count two..ten: the parser, its rules and word lists, and the stage.

- :mod:`~countclip.data.captions.parser` — :class:`CountCaption`, :func:`parse_caption`,
  :func:`parse_captions` (batched over ``nlp.pipe``), :func:`find_number`;
- :mod:`~countclip.data.captions.rules` — why a number word is not a count (times, ages,
  titles, ...), as named rejection reasons;
- :mod:`~countclip.data.captions.words` — the word lists those rules use;
- :mod:`~countclip.stages.captions` — the caption stage over the metadata candidates.
"""
