"""Where a caption's count is: :class:`CountCaption` (the count and the character span of its
number, which the counterfactual captions replace) and :func:`find_number` (the span of a
*given* count, for CountBench). Re-exported by :mod:`countclip.data.captions.parser`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from countclip.data.captions.words import NUMBER_WORDS

__all__ = ["CountCaption", "find_number"]


@dataclass(frozen=True)
class CountCaption:
    """A caption that states a count: ``text[start:end]`` is the number word (or digit)."""

    text: str
    count: int
    start: int
    end: int

    @property
    def word(self) -> str:
        return self.text[self.start : self.end]

    def counterfactual(self, n: int) -> str:
        """The caption with only the number's span replaced by ``n``, keeping its casing
        ("Three" -> "Seven", "THREE" -> "SEVEN"); a digit stays a digit."""
        if n not in NUMBER_WORDS:
            raise ValueError(f"counterfactual count must be in 2..10, got {n}")
        return self.text[: self.start] + _cased(self.word, n) + self.text[self.end :]


def _cased(original: str, n: int) -> str:
    if original.isdigit():
        return str(n)
    word = NUMBER_WORDS[n]
    if original.isupper():
        return word.upper()
    if original[:1].isupper():
        return word.capitalize()
    return word


def find_number(text: str, count: int) -> CountCaption | None:
    """Locate the number for a *given* count (CountBench labels are given): the first
    standalone occurrence of its word or digit, case-insensitive; other numbers may remain.
    Prefers an occurrence not glued to a hyphen ("three" over "three-year-old")."""
    if count not in NUMBER_WORDS:
        raise ValueError(f"count must be in 2..10, got {count}")
    alt = rf"(?:{NUMBER_WORDS[count]}|{count})"
    strict = re.compile(rf"(?<![\w.,\-‐–]){alt}(?![\w\-‐–]|[.,]\d)", re.IGNORECASE)
    loose = re.compile(rf"(?<![\w.,]){alt}(?!\w|[.,]\d)", re.IGNORECASE)
    for pattern in (strict, loose):
        m = pattern.search(text)
        if m:
            return CountCaption(text, count, m.start(), m.end())
    return None
