"""Built-in augmenter: keyboard-neighbour typos (``char_noise``).

Real users mistype; a classifier finetuned on clean text only is brittle to "chekc my balnace".
Replacing a few letters with a key next to them on a QWERTY keyboard makes realistic typos that do
not change what the text asks for, so the label carries over unchanged.

It is restricted to classification: a causal-LM completion often copies from its prompt (names,
codes, quotes), and a typo in the prompt would make the unchanged completion wrong.
"""

from __future__ import annotations

import random
from typing import Iterator

from pydantic import Field

from tuneloop import Augmenter, Example, Options, hookimpl

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours() -> dict[str, str]:
    """Each letter's physical neighbours on a staggered QWERTY keyboard (same row, row above
    at columns c and c+1, row below at c-1 and c)."""
    table: dict[str, str] = {}
    for row_number, row in enumerate(_ROWS):
        for column, key in enumerate(row):
            near = []
            for other_row, columns in ((row_number, (column - 1, column + 1)),
                                       (row_number - 1, (column, column + 1)),
                                       (row_number + 1, (column - 1, column))):
                if 0 <= other_row < len(_ROWS):
                    near += [_ROWS[other_row][c] for c in columns
                             if 0 <= c < len(_ROWS[other_row])]
            table[key] = "".join(near)
    return table


NEIGHBOURS: dict[str, str] = _neighbours()


class CharNoiseOptions(Options):
    """``probability``: chance that each letter becomes a neighbouring key; ``copies``: noisy
    variants made per example (fewer when the text allows fewer distinct variants)."""

    probability: float = Field(0.05, gt=0, le=1)
    copies: int = Field(1, ge=1, le=100)


class CharNoise(Augmenter):
    """Keyboard-neighbour typos in the input; target, weight, group and source are kept.

    Only ASCII letters are changed (digits and punctuation can change meaning: "7 days" is not
    "8 days"), and case is kept. Every variant differs from its original: when no letter was hit by
    chance, one letter is changed anyway, so no copy of an example is ever added (that would only
    reweight it). Variants of one example are distinct. Unlabeled examples are skipped (there is
    no label to preserve). Deterministic: the same examples and rng state give the same variants.
    """

    name = "char_noise"
    tasks = ("classification",)
    Options = CharNoiseOptions
    options: CharNoiseOptions

    def augment(self, examples: list[Example], rng: random.Random) -> Iterator[Example]:
        copies = self.options.copies
        for original in examples:
            if original.target is None:
                continue
            positions = [i for i, ch in enumerate(original.input)
                         if ch.isascii() and ch.lower() in NEIGHBOURS]
            if not positions:
                continue
            made = {original.input}
            for _ in range(3 * copies):  # bounded: "ab" has only so many distinct typos
                if len(made) > copies:
                    break
                text = self._noisy(original.input, positions, rng)
                if text in made:
                    continue
                made.add(text)
                yield Example(input=text, target=original.target, weight=original.weight,
                              group=original.group, source=original.source, split="train",
                              provenance={"kind": "augmented", "from": original.id,
                                          "augmenter": self.name})

    def _noisy(self, text: str, positions: list[int], rng: random.Random) -> str:
        chars = list(text)
        hit = [i for i in positions if rng.random() < self.options.probability]
        if not hit:
            hit = [rng.choice(positions)]
        for i in hit:
            typo = rng.choice(NEIGHBOURS[chars[i].lower()])
            chars[i] = typo.upper() if chars[i].isupper() else typo
        return "".join(chars)


@hookimpl
def register_augmenters(register):
    """The built-in augmenters."""
    register(CharNoise)
