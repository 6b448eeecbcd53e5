"""Checks on prepared examples that name the example: where it came from, and what is wrong.

An example carries its source's file name and, in ``provenance``, its line (or row); an error about
it should say both, as the sources' own errors do, so the person fixing the data knows where to
look. Cleaners and the cycle use :func:`example_error` for that.
"""

from __future__ import annotations

from typing import Iterable

from tuneloop.components import Example
from tuneloop.errors import DataError


def where(example: Example) -> str:
    """``intents.jsonl:14``, ``table.parquet row 3``, or the source alone."""
    source = example.source or "data"
    provenance = example.provenance or {}
    if provenance.get("line") is not None:
        return f"{source}:{provenance['line']}"
    for unit in ("row", "index"):
        if provenance.get(unit) is not None:
            return f"{source} {unit} {provenance[unit]}"
    return source


def example_error(example: Example, message: str) -> DataError:
    """A DataError naming the example's source and line (or row)."""
    source = example.source or "data"
    provenance = example.provenance or {}
    line = provenance.get("line")
    if isinstance(line, int):
        return DataError(source, message, line)
    for unit in ("row", "index"):
        if provenance.get(unit) is not None:
            return DataError(source, f"{unit} {provenance[unit]}: {message}")
    return DataError(source, message)


def labels_outside(examples: Iterable[Example], allowed: Iterable[str]) -> list[Example]:
    """The labelled examples whose target is not in ``allowed`` (in input order)."""
    allowed_set = set(allowed)
    return [example for example in examples
            if example.target is not None and example.target not in allowed_set]
