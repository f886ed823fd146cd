"""What a prompt offers to fill arguments with: the sandbox's reading of the user's message.

A model asked "What is 6 times 7?" calls `multiply(a=6, b=7)`, and asked "What's the weather in Paris?"
calls `get_weather(city="Paris")`. The sandbox does not understand the prompt, but it can pick out the
same cues, deterministically:

- numbers: the numbers written in digits, in order ("1,000" is one thousand; "gpt-4o" holds none);
- strings, best first: quoted text ('…', "…", `…`, “…”), then capitalised words that do not start a
  sentence (consecutive ones joined: "New York"), then the other words of three letters or more that
  are neither common words ("what", "the") nor identifiers ("get_weather");
- mentions: whether the prompt names a word or phrase, for enums and booleans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Cues"]

_NUMBER = re.compile(r"(?<![\w.\-])(-?)([0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,15})(\.[0-9]{1,15})?(?!\.?\w)")
_QUOTED = re.compile(r"\"([^\"\n]+)\"|“([^”\n]+)”|‘([^’\n]+)’|`([^`\n]+)`|(?<!\w)'([^'\n]+)'(?!\w)")
_NAME = re.compile(r"[^\W\d_](?:[\w-]|'(?=[^\W\d_]))*")
_WORD = re.compile(r"[^\W\d_][\w-]{2,}")
_SENTENCE_END = re.compile(r"[.!?:;\n]")
_NAME_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[^\W\d_]+")
# Words too common to make a plausible argument value ("city": "What").
_COMMON = frozenset((
    "the", "and", "for", "are", "was", "were", "what", "when", "where", "which", "who", "why", "how", "this",
    "that", "these", "those", "with", "from", "into", "your", "you", "our", "can", "could", "would", "should",
    "will", "please", "tell", "give", "show", "use", "call", "get", "has", "have", "had", "not", "but", "about",
    "some", "any", "all", "its", "there", "their", "them", "they", "then", "than", "also", "just",
))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cues:
    """The values a prompt offers, in the order a builder should use them.

    Attributes:
        strings: candidate string values, best first (see the module docstring); may be empty.
        numbers: the numbers written in the prompt, in order (int unless written with a decimal point).
        text: the prompt, for `mentions`.
    """

    strings: tuple[str, ...] = ()
    numbers: tuple[int | float, ...] = ()
    text: str = ""

    @classmethod
    def read(cls, text: str) -> Cues:
        """Read the cues of a prompt.

        Args:
            text: the user's message (without the sandbox's magic markers).

        Returns:
            Its strings, numbers and text.
        """
        return cls(_strings(text), _numbers(text), text)

    def mentions(self, phrase: str) -> bool:
        """Whether the prompt names `phrase` as whole words, ignoring case ("Celsius" mentions "celsius")."""
        phrase = phrase.strip()
        if not phrase:
            return False
        return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", self.text, re.IGNORECASE) is not None

    def mentions_name(self, name: str) -> bool:
        """Whether the prompt names every word of an identifier (`include_forecast`, `isUrgent`: "urgent").

        Words of fewer than three letters ("is", "to") are left out; a name made only of them is not mentioned.
        """
        parts = [part for part in _NAME_PART.findall(name) if len(part) >= 3]
        return bool(parts) and all(
            re.search(rf"(?<!\w){re.escape(part)}", self.text, re.IGNORECASE) is not None for part in parts
        )


def _numbers(text: str) -> tuple[int | float, ...]:
    numbers: list[int | float] = []
    for sign, whole, fraction in _NUMBER.findall(text):
        digits = sign + whole.replace(",", "")
        numbers.append(float(digits + fraction) if fraction else int(digits))
    return tuple(numbers)


def _strings(text: str) -> tuple[str, ...]:
    quoted = [next(group for group in match.groups() if group) for match in _QUOTED.finditer(text)]
    candidates = [value.strip() for value in quoted] + _proper_names(_QUOTED.sub(" ", text)) + _words(text)
    unique: dict[str, None] = {}
    for candidate in candidates:
        if candidate:
            unique.setdefault(candidate, None)
    return tuple(unique)


def _proper_names(text: str) -> list[str]:
    """Capitalised words that do not start a sentence, runs of them joined ("New York")."""
    names: list[list[str]] = []
    end = 0
    joinable = False
    for match in _NAME.finditer(text):
        gap = text[end : match.start()]
        initial = end == 0 or _SENTENCE_END.search(gap) is not None
        word = match.group().removesuffix("'s")
        end = match.end()
        if initial or not word[0].isupper() or len(word) < 2 or word.lower() in _COMMON:
            joinable = False
            continue
        if joinable and gap.isspace():
            names[-1].append(word)
        else:
            names.append([word])
        joinable = True
    return [" ".join(name) for name in names]


def _words(text: str) -> list[str]:
    words = [word for word in _WORD.findall(text) if "_" not in word]
    return [word for word in words if word.lower() not in _COMMON] or words
