"""Captions that state a count two..ten: the parser, its vetoes, classifier and word lists.

- :mod:`~countclip.data.captions.parser` — :class:`CaptionParser`, :func:`parse_caption`,
  :func:`parse_captions` (batched over ``nlp.pipe``);
- :mod:`~countclip.data.captions.spans` — :class:`CountCaption` (the count and its span, the
  counterfactuals), :func:`find_number`;
- :mod:`~countclip.data.captions.rules` — what the context of a number word says (times, ages,
  titles, compounds, ...), as named reasons: the certain ones veto, the others are features;
- :mod:`~countclip.data.captions.classifier` — the features of a number word and the model
  (``count_classifier.json``, trained by ``scripts/train_caption_classifier.py``);
- :mod:`~countclip.data.captions.quality` — recall, rejection and precision on the labelled
  LAION captions, and the generated section of docs/captions.md;
- :mod:`~countclip.data.captions.words`, :mod:`~countclip.data.captions.titles` — the word
  lists; :mod:`~countclip.data.captions.nouns` — general word knowledge for the classifier
  (nouns of things a picture shows, abstract nouns, news and work-title words);
- :mod:`~countclip.stages.captions` — the caption stage over the metadata candidates.
"""
