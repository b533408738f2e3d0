"""The counts the method teaches and their words: two..ten, the paper's scope.

The one definition every part uses (the metadata prefilter's default words, the caption parser,
the λ classes, CountBench's nine captions, the synthetic world's vocabulary).
"""

from __future__ import annotations

COUNTS: tuple[int, ...] = tuple(range(2, 11))
"""The count classes, 2..10."""

NUMBER_WORDS: dict[int, str] = {
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    7: "seven",
    8: "eight",
    9: "nine",
    10: "ten",
}
"""Count -> its number word."""

WORD_COUNTS: dict[str, int] = {word: count for count, word in NUMBER_WORDS.items()}
DIGIT_COUNTS: dict[str, int] = {str(count): count for count in NUMBER_WORDS}
