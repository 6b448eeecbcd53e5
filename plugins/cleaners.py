"""Built-in cleaners: what they drop, what they fix, and why.

==========================  ======================================================================
``unicode_normalize``       one Unicode form (NFKC by default); control and invisible format
                            characters removed
``normalize_whitespace``    runs of spaces collapsed, ends trimmed
``strip_html``              tags removed (script and style with their content), entities decoded
``drop_empty``              empty inputs dropped (and, optionally, examples without a target)
``fill_missing``            a missing target filled with a configured value
``length_filter``           inputs shorter or longer than bounds in characters dropped
``token_length_filter``     the same in the model's tokens (uses the model's tokenizer)
``drop_duplicates``         exact duplicates of (normalised input, target) dropped
``drop_near_duplicates``    near duplicates dropped: same normalised text, or similar above a
                            threshold (MinHash, verified)
``label_conflicts``         one input with different labels: dropped, or settled by majority
``mask_pii``                e-mail addresses, phone numbers, card numbers replaced by placeholders
``normalize_labels``        labels trimmed, case-folded and mapped (``{"Billing ": billing}``)
``allowed_labels``          a label outside the allowed list is an error naming file and line
                            (``on_error: skip`` drops it instead)
==========================  ======================================================================

Cleaners are generators: they see one example at a time and keep only what they need to decide,
so a large source streams through; those that must see everything first (``label_conflicts``, and
``drop_duplicates``, which keeps the copy pinned to the most protected split) say so. Every
removal is reported through ``removed(example, reason)`` and every fix is counted in
``changes()``, because data that silently disappears or changes between the file and the model is
a debugging trap. Reasons are short fixed phrases: the cycle report counts examples per reason,
and the example itself (with its source and line in ``provenance``) says which one went.

A fix builds a new ``Example`` (``dataclasses.replace`` with ``id=""``, so the id, a hash of input
and target, is recomputed); provenance, source, weight and group are kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import re
import unicodedata
from collections import Counter, defaultdict
from html.parser import HTMLParser
from typing import Any, Iterable, Iterator, Literal

from pydantic import Field, field_validator, model_validator

from tuneloop import Cleaner, Example, Options, hookimpl
from tuneloop.components import Removal
from tuneloop.data_checks import example_error

TextField = Literal["input", "target"]


def normalise(text: str) -> str:
    """Case-folded, whitespace-collapsed text: the same normalisation ``Example.split_key`` uses."""
    return " ".join(text.lower().split())


def _replace(example: Example, **fields: Any) -> Example:
    """A fixed copy of ``example``: same provenance, source, weight, group; a new id."""
    return dataclasses.replace(example, id="", **fields)


class FixingCleaner(Cleaner):
    """A cleaner that rewrites text fields; it counts each example it changed under ``reason``."""

    reason = "changed"

    def __init__(self, options: Any = None):
        super().__init__(options)
        self._changes: Counter[str] = Counter()

    def changes(self) -> dict[str, int]:
        return dict(self._changes)

    def fields(self) -> tuple[str, ...]:
        return tuple(getattr(self.options, "fields", ("input", "target")))

    def fix(self, text: str) -> str:
        raise NotImplementedError

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        fields = self.fields()
        for example in examples:
            updates = {}
            for field in fields:
                value = getattr(example, field)
                if value is None:
                    continue
                fixed = self.fix(value)
                if fixed != value:
                    updates[field] = fixed
            if updates:
                self._changes[self.reason] += 1
                example = _replace(example, **updates)
            yield example


# --------------------------------------------------------------------------------------------------
# Text fixes: Unicode, whitespace, HTML
# --------------------------------------------------------------------------------------------------


class UnicodeOptions(Options):
    """``form``: the Unicode normal form; ``remove_controls``: drop control characters (except tab
    and line breaks) and invisible format characters (zero-width spaces, BOMs, bidi marks)."""

    form: Literal["NFC", "NFKC", "NFD", "NFKD"] = "NFKC"
    remove_controls: bool = True
    fields: list[TextField] = ["input", "target"]


_KEPT_CONTROLS = {"\t", "\n", "\r"}
_ASCII_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_invisible: dict[int, None] | None = None


def invisible_characters() -> dict[int, None]:
    """A ``str.translate`` table deleting control (Cc) and format (Cf) characters except tab and
    line breaks; built once (a scan of every code point, a fraction of a second)."""
    global _invisible
    if _invisible is None:
        _invisible = {code: None for code in range(0x110000)
                      if unicodedata.category(chr(code)) in ("Cc", "Cf")
                      and chr(code) not in _KEPT_CONTROLS}
    return _invisible


class UnicodeNormalize(FixingCleaner):
    """One Unicode form for all text, and no invisible characters.

    The same word typed on two keyboards can be two different strings (a precomposed "é" and an "e"
    with a combining accent; a full-width "Ａ"): a model and a duplicate check see two words. NFKC
    makes them one. Control characters and zero-width format characters are invisible to a
    reviewer and noise to a tokenizer.
    """

    name = "unicode_normalize"
    Options = UnicodeOptions
    options: UnicodeOptions
    reason = "unicode normalised"

    def fix(self, text: str) -> str:
        if text.isascii():  # every normal form of ASCII is itself: only controls can go
            if self.options.remove_controls and _ASCII_CONTROLS.search(text):
                return _ASCII_CONTROLS.sub("", text)
            return text
        text = unicodedata.normalize(self.options.form, text)
        if self.options.remove_controls:
            text = text.translate(invisible_characters())
        return text


class WhitespaceOptions(Options):
    """``keep_newlines``: collapse spaces within lines but keep line breaks (useful for prompts)."""

    keep_newlines: bool = False
    fields: list[TextField] = ["input"]


_SPACES = re.compile(r"[^\S\n]+")


class NormalizeWhitespace(FixingCleaner):
    """Runs of whitespace become one space and the ends are trimmed.

    Only the input by default: a causal-LM completion's leading space is part of the tokens the
    model must learn to produce.
    """

    name = "normalize_whitespace"
    Options = WhitespaceOptions
    options: WhitespaceOptions
    reason = "whitespace normalised"

    def fix(self, text: str) -> str:
        if not self.options.keep_newlines:
            return " ".join(text.split())
        lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
        return "\n".join(lines).strip()


class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment: tags dropped, script/style skipped, breaks kept."""

    BREAKS = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}
    SKIPPED = {"script", "style"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIPPED:
            self.skipping += 1
        elif tag in self.BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self.skipping:
            self.skipping -= 1
        elif tag in self.BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


_LOOKS_LIKE_HTML = re.compile(r"<[a-zA-Z/!][^>]*>|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")


class HtmlOptions(Options):
    fields: list[TextField] = ["input"]


class StripHtml(FixingCleaner):
    """Removes HTML tags (and the content of ``script``/``style``), decodes entities (``&amp;``).

    Text scraped from web pages or tickets carries markup the model would learn to expect. Block
    tags (``p``, ``br``, ``li``...) become spaces so words on either side stay apart; a text with
    no tag or entity is left exactly as it was (a "<" in "a < b" is not markup).
    """

    name = "strip_html"
    Options = HtmlOptions
    options: HtmlOptions
    reason = "html stripped"

    def fix(self, text: str) -> str:
        if not _LOOKS_LIKE_HTML.search(text):
            return text
        parser = _TextOnly()
        parser.feed(text)
        parser.close()
        stripped = html.unescape("".join(parser.parts))
        return re.sub(r"[^\S\n]{2,}", " ", stripped).strip()


# --------------------------------------------------------------------------------------------------
# Empty and missing values
# --------------------------------------------------------------------------------------------------


class DropEmptyOptions(Options):
    """``require_target``: also drop examples without a target (missing, or only whitespace)."""

    require_target: bool = False


class DropEmpty(Cleaner):
    """Drops examples whose input is empty or whitespace, and optionally those without a target.

    An empty input teaches nothing and, for a classifier, pushes every label towards the prior.
    Unlabeled examples are kept by default because a review pool is unlabeled on purpose; set
    ``require_target`` when every example must be trainable. A whitespace-only target counts as
    missing: it is no label and no completion.
    """

    name = "drop_empty"
    Options = DropEmptyOptions
    options: DropEmptyOptions

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        require_target = self.options.require_target
        for example in examples:
            if not example.input.strip():
                removed(example, "empty input")
            elif require_target and (example.target is None or not example.target.strip()):
                removed(example, "missing target")
            else:
                yield example


class FillMissingOptions(Options):
    """``target``: the value a missing (or whitespace-only) target gets; ``only_pinned_to``: fill
    only examples pinned to these splits (e.g. ``[train]``), leaving a review pool unlabeled."""

    target: str = Field(min_length=1)
    only_pinned_to: list[Literal["train", "validation", "test", "review"]] | None = None


class FillMissing(Cleaner):
    """Fills a missing target with a configured value (``{name: fill_missing, target: other}``).

    The counterpart of ``drop_empty``'s ``require_target``: where an unlabeled record means "none
    of the intents" (an out-of-scope pool), labelling it explicitly keeps it as training data.
    """

    name = "fill_missing"
    Options = FillMissingOptions
    options: FillMissingOptions

    def __init__(self, options: Any = None):
        super().__init__(options)
        self._filled = 0

    def changes(self) -> dict[str, int]:
        return {"target filled": self._filled} if self._filled else {}

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        only = self.options.only_pinned_to
        for example in examples:
            missing = example.target is None or not example.target.strip()
            if missing and (only is None or example.split in only):
                self._filled += 1
                example = _replace(example, target=self.options.target)
            yield example


# --------------------------------------------------------------------------------------------------
# Length bounds
# --------------------------------------------------------------------------------------------------


class LengthOptions(Options):
    """Bounds on the input's length (``field: target`` for the target, ``both`` for their sum)."""

    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=1)
    field: Literal["input", "target", "both"] = "input"

    @model_validator(mode="after")
    def _some_bound(self) -> "LengthOptions":
        if self.min_chars is None and self.max_chars is None:
            raise ValueError("set min_chars, max_chars or both")
        if self.min_chars is not None and self.max_chars is not None and \
                self.min_chars > self.max_chars:
            raise ValueError("min_chars is above max_chars")
        return self


def _measured(example: Example, field: str) -> str:
    if field == "input":
        return example.input
    if field == "target":
        return example.target or ""
    return example.input + (example.target or "")


class LengthFilter(Cleaner):
    """Drops examples shorter than ``min_chars`` or longer than ``max_chars`` characters.

    Very short inputs ("hi", "?") rarely carry their label; very long ones are pasted logs or
    e-mails that would be truncated anyway. Characters are counted after the cleaners before it.
    """

    name = "length_filter"
    Options = LengthOptions
    options: LengthOptions

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        low, high, field = self.options.min_chars, self.options.max_chars, self.options.field
        for example in examples:
            length = len(_measured(example, field))
            if low is not None and length < low:
                removed(example, f"shorter than {low} characters")
            elif high is not None and length > high:
                removed(example, f"longer than {high} characters")
            else:
                yield example


class TokenLengthOptions(Options):
    """Bounds in the model's tokens (special tokens included, as the model sees them)."""

    min_tokens: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1)
    field: Literal["input", "target", "both"] = "input"
    batch_size: int = Field(512, ge=1)

    @model_validator(mode="after")
    def _some_bound(self) -> "TokenLengthOptions":
        if self.min_tokens is None and self.max_tokens is None:
            raise ValueError("set min_tokens, max_tokens or both")
        if self.min_tokens is not None and self.max_tokens is not None and \
                self.min_tokens > self.max_tokens:
            raise ValueError("min_tokens is above max_tokens")
        return self


class TokenLengthFilter(Cleaner):
    """Drops examples outside bounds counted in the model's tokens.

    ``max_tokens`` set to the model's ``max_length`` drops what training would silently truncate (a
    classifier would lose the end of the text, a causal LM the end of the completion). The cycle
    hands over the model's tokenizer (``needs_tokenizer``); texts are tokenized in batches.
    """

    name = "token_length_filter"
    Options = TokenLengthOptions
    options: TokenLengthOptions
    needs_tokenizer = True

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        if self.tokenizer is None:
            raise RuntimeError("token_length_filter needs the model's tokenizer (set by the cycle)")
        batch: list[Example] = []
        for example in examples:
            batch.append(example)
            if len(batch) >= self.options.batch_size:
                yield from self._filter(batch, removed)
                batch = []
        if batch:
            yield from self._filter(batch, removed)

    def _filter(self, batch: list[Example], removed: Removal) -> Iterator[Example]:
        low, high = self.options.min_tokens, self.options.max_tokens
        lengths = token_lengths(self.tokenizer, [_measured(e, self.options.field) for e in batch])
        for example, length in zip(batch, lengths):
            if low is not None and length < low:
                removed(example, f"shorter than {low} tokens")
            elif high is not None and length > high:
                removed(example, f"longer than {high} tokens")
            else:
                yield example


def token_lengths(tokenizer: Any, texts: list[str]) -> list[int]:
    """Token counts of ``texts`` as the model sees them (special tokens included)."""
    encoded = tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]
    return [len(ids) for ids in encoded]


# --------------------------------------------------------------------------------------------------
# Duplicates and conflicts
# --------------------------------------------------------------------------------------------------


class DropDuplicates(Cleaner):
    """Drops exact duplicates of (normalised input, target), keeping the most protected copy.

    The input is compared case- and whitespace-insensitively (as the split key is: a trailing
    newline or a double space is no difference), the target exactly (a completion's leading space
    is part of what the model learns). The same input with a *different* target is not a
    duplicate: it is a conflicting label, kept so the split keeps both copies together and a
    reviewer (or ``label_conflicts``) can settle it. A duplicate would otherwise count twice in
    training and, worse, in the metrics.

    Which copy stays: the one a source pinned to the most protected split (test, then
    validation, review, train; an unpinned copy last), else the first. Sources are read in
    order, so keeping the first would let a training file read before the official test file
    delete a test row in favour of its training copy: the test set must never lose a row to a
    training duplicate. So the cleaner holds the examples it keeps until the input ends (a
    digest and a reference each; the cycle holds them all after cleaning anyway) and yields them
    in their order.
    """

    name = "drop_duplicates"

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        kept: list[Example] = []
        slots: dict[bytes, int] = {}  # digest of (normalised input, target) -> its slot in kept
        for example in examples:
            digest = _digest(normalise(example.input), example.target)
            slot = slots.get(digest)
            if slot is None:
                slots[digest] = len(kept)
                kept.append(example)
            elif protection(example) > protection(kept[slot]):
                removed(kept[slot], "duplicate")
                kept[slot] = example
            else:
                removed(example, "duplicate")
        del slots
        yield from kept


def protection(example: Example) -> int:
    """How protected the split an example is pinned to is: test 4, validation 3, review 2,
    train 1, unpinned 0 (``tuneloop.splitting.PIN_PRECEDENCE``). Of two duplicates, the more
    protected stays: a test row never gives way to a training copy."""
    from tuneloop.splitting import PIN_PRECEDENCE

    if example.split not in PIN_PRECEDENCE:
        return 0
    return len(PIN_PRECEDENCE) - PIN_PRECEDENCE.index(example.split)


def _digest(text: str, target: str | None) -> bytes:
    """A digest of (text, target) that no other pair shares: the text's length prefixes it, and
    a missing target is marked apart from an empty one."""
    payload = f"{len(text)}:{text}" + ("\x00" if target is None else "\x01" + target)
    return hashlib.sha1(payload.encode("utf-8", "surrogatepass")).digest()


class NearDuplicateOptions(Options):
    """``method``: ``normalized`` drops texts equal after normalisation (case, punctuation,
    Unicode forms, whitespace); ``similarity`` drops texts whose character-shingle Jaccard
    similarity to a kept one reaches ``threshold``. ``across_labels``: also drop a near duplicate
    with another label (by default only same-label copies go; different labels are a conflict)."""

    method: Literal["normalized", "similarity"] = "similarity"
    threshold: float = Field(0.9, gt=0, le=1)
    across_labels: bool = False
    batch_size: int = Field(1024, ge=1)


class DropNearDuplicates(Cleaner):
    """Drops near duplicates of earlier examples, keeping the first.

    Except where the later copy is pinned to a more protected split than the earlier one (a
    test row read after a training file): the earlier one has streamed on already, so both are
    kept, and the leakage check after the split refuses the pair or drops the less protected
    copy (``data.leakage.action``). A test row is never dropped for a training near copy.

    ``normalized`` is cheap (a digest per example) and catches "What's my balance?" against
    "whats my balance". ``similarity`` also catches typos and one-word edits: MinHash LSH finds
    candidates and each is confirmed with the exact Jaccard similarity of character 5-grams, so
    nothing is dropped on a hash collision. It keeps the shingles of every kept example (a few
    hundred bytes each): fine for hundreds of thousands of examples, not for a billion.
    """

    name = "drop_near_duplicates"
    Options = NearDuplicateOptions
    options: NearDuplicateOptions

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        if self.options.method == "normalized":
            yield from self._normalized(examples, removed)
        else:
            yield from self._similar(examples, removed)

    def _normalized(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        from tuneloop.near_duplicates import normalise as normalise_hard

        seen: dict[bytes, int] = {}  # digest -> the protection of the copy kept
        for example in examples:
            digest = _digest(normalise_hard(example.input),
                             None if self.options.across_labels else example.target)
            rank = protection(example)
            if digest in seen and rank <= seen[digest]:
                removed(example, "near duplicate (normalized)")
                continue
            seen[digest] = rank
            yield example

    def _similar(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        from tuneloop.near_duplicates import NearDuplicateIndex

        # one index per label unless labels are ignored: a near duplicate with another label is
        # a conflict, not a duplicate
        indexes: dict[str | None, NearDuplicateIndex] = {}
        ranks: dict[str | None, bytearray] = {}  # the protection of each indexed text
        batch: list[Example] = []

        def flush() -> Iterator[Example]:
            by_label: dict[tuple[str | None, int], list[int]] = defaultdict(list)
            for position, example in enumerate(batch):
                label = None if self.options.across_labels else example.target
                by_label[label, protection(example)].append(position)
            dropped: set[int] = set()
            # the most protected first: a copy only matches an indexed text at least as protected
            for (label, rank), positions in sorted(by_label.items(), key=lambda item: -item[0][1]):
                index = indexes.get(label)
                if index is None:
                    index = indexes[label] = NearDuplicateIndex(self.options.threshold)
                    ranks[label] = bytearray()
                held = ranks[label]
                # a text indexed earlier in this call (past ``held``) has this same rank
                matches = index.match_and_add([batch[p].input for p in positions],
                                              accept=lambda found, held=held, rank=rank:
                                              found >= len(held) or held[found] >= rank)
                held.extend(rank for match in matches if match is None)  # indexed, in order
                dropped.update(p for p, match in zip(positions, matches) if match is not None)
            for position, example in enumerate(batch):
                if position in dropped:
                    removed(example, f"near duplicate (similarity >= {self.options.threshold:g})")
                else:
                    yield example

        for example in examples:
            batch.append(example)
            if len(batch) >= self.options.batch_size:
                yield from flush()
                batch = []
        if batch:
            yield from flush()


class ConflictOptions(Options):
    """``action``: ``drop`` removes every example of an input with conflicting labels;
    ``majority`` keeps those with the most common label (a tie drops them all)."""

    action: Literal["drop", "majority"] = "drop"


class LabelConflicts(Cleaner):
    """The same input (case- and whitespace-insensitive) with different labels.

    Two annotators disagreeing, or one intent renamed half way: either way the model is taught
    both answers and every metric on that input is a coin toss. ``drop`` removes the input
    altogether (the reviewers can label it later); ``majority`` keeps the most common label.
    Classification only (two different completions for one prompt are normal in causal LM). It
    must see every example before it yields any, so it holds them.
    """

    name = "label_conflicts"
    tasks = ("classification",)
    Options = ConflictOptions
    options: ConflictOptions

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        held = list(examples)
        labels: dict[str, Counter[str]] = defaultdict(Counter)
        for example in held:
            if example.target is not None:
                labels[normalise(example.input)][example.target] += 1
        for example in held:
            counts = labels.get(normalise(example.input))
            if example.target is None or counts is None or len(counts) < 2:
                yield example
                continue
            if self.options.action == "majority":
                (top, top_count), (_, second_count) = counts.most_common(2)
                if top_count > second_count and example.target == top:
                    yield example
                    continue
                removed(example, "conflicting label (minority)" if top_count > second_count
                        else "conflicting label (tie)")
            else:
                removed(example, "conflicting label")


# --------------------------------------------------------------------------------------------------
# PII
# --------------------------------------------------------------------------------------------------

PiiKind = Literal["email", "phone", "card"]
EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
                   r"\.[A-Za-z]{2,}\b")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}"
                   r"(?![\w-])|(?<![\w+])\+\d{7,15}(?!\w)")
SEVEN_DIGITS = re.compile(r"(?:\D*\d){7}")  # fewer digits than this: no phone, no card
DATE = re.compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies (and most order numbers do not)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


class PiiOptions(Options):
    """``kinds``: what to mask; ``fields``: where; the placeholders default to ``[EMAIL]``,
    ``[PHONE]`` and ``[CARD]``."""

    kinds: list[PiiKind] = ["email", "phone", "card"]
    fields: list[TextField] = ["input", "target"]
    placeholders: dict[PiiKind, str] = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]"}

    @field_validator("kinds")
    @classmethod
    def _some_kind(cls, kinds: list[str]) -> list[str]:
        if not kinds:
            raise ValueError("kinds is empty: nothing would be masked")
        return kinds


class MaskPii(Cleaner):
    """Replaces e-mail addresses, phone numbers and payment card numbers with placeholders.

    Personal data must not be memorised by a model or shown to reviewers who need not see it.
    Cards are 13-19 digits (spaces or dashes allowed) passing the Luhn checksum, so an order number
    is left alone. Phones are 7-15 digits written in groups (``+44 20 7946 0958``,
    ``(555) 123-4567``, ``555-1234``) or with a leading ``+``; a date (``2024-01-31``) or a bare
    run of digits is not a phone. The reasons in ``changes()`` count examples per kind masked.
    """

    name = "mask_pii"
    Options = PiiOptions
    options: PiiOptions

    def __init__(self, options: Any = None):
        super().__init__(options)
        self._changes: Counter[str] = Counter()
        self._placeholders = {**PiiOptions.model_fields["placeholders"].default,
                              **self.options.placeholders}

    def changes(self) -> dict[str, int]:
        return dict(self._changes)

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        for example in examples:
            updates: dict[str, str] = {}
            kinds_found: set[str] = set()
            for field in self.options.fields:
                value = getattr(example, field)
                if value is None:
                    continue
                masked, found = self.mask(value)
                if found:
                    updates[field] = masked
                    kinds_found |= found
            if updates:
                for kind in sorted(kinds_found):
                    self._changes[f"{kind} masked"] += 1
                example = _replace(example, **updates)
            yield example

    def mask(self, text: str) -> tuple[str, set[str]]:
        """``text`` with PII replaced, and the kinds found."""
        found: set[str] = set()
        placeholders, kinds = self._placeholders, self.options.kinds
        if "email" in kinds and "@" in text:
            text, count = EMAIL.subn(placeholders["email"], text)
            if count:
                found.add("email")
        if not SEVEN_DIGITS.match(text):
            return text, found
        if "card" in kinds:
            def card(match: re.Match[str]) -> str:
                digits = re.sub(r"\D", "", match.group())
                if 13 <= len(digits) <= 19 and luhn_valid(digits):
                    found.add("card")
                    return placeholders["card"]
                return match.group()

            text = CARD.sub(card, text)
        if "phone" in kinds:
            def phone(match: re.Match[str]) -> str:
                candidate = match.group()
                digits = re.sub(r"\D", "", candidate)
                if not 7 <= len(digits) <= 15 or DATE.match(candidate.strip()):
                    return candidate
                found.add("phone")
                return placeholders["phone"]

            text = PHONE.sub(phone, text)
        return text, found


# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------


class LabelNormOptions(Options):
    """``strip``: trim whitespace; ``case``: ``lower``, ``upper`` or ``keep``; ``separators``:
    turn runs of spaces, dashes and underscores into this string (``"_"``: "Card Lost" and
    "card-lost" both become ``card_lost``); ``mapping``: rename labels after that (``{cc: card}``)."""

    strip: bool = True
    case: Literal["lower", "upper", "keep"] = "lower"
    separators: str | None = None
    mapping: dict[str, str] = {}


class NormalizeLabels(Cleaner):
    """One spelling per label: "Billing ", "billing" and "BILLING" are one class, not three.

    Classification only: a completion's case and spacing are part of what the model must say.
    """

    name = "normalize_labels"
    tasks = ("classification",)
    Options = LabelNormOptions
    options: LabelNormOptions

    def __init__(self, options: Any = None):
        super().__init__(options)
        self._changed = 0

    def changes(self) -> dict[str, int]:
        return {"label normalised": self._changed} if self._changed else {}

    def normalise_label(self, label: str) -> str:
        options = self.options
        if options.strip:
            label = label.strip()
        if options.case == "lower":
            label = label.lower()
        elif options.case == "upper":
            label = label.upper()
        if options.separators is not None:
            label = re.sub(r"[\s_-]+", options.separators, label)
        return options.mapping.get(label, label)

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        for example in examples:
            if example.target is not None:
                label = self.normalise_label(example.target)
                if label != example.target:
                    self._changed += 1
                    example = _replace(example, target=label)
            yield example


class AllowedLabelsOptions(Options):
    """``labels``: the allowed set; ``on_error``: ``raise`` (the default, from ``data.on_error``)
    stops at the first label outside it, naming the file and line; ``skip`` drops and counts them.
    ``drop_unlabeled``: also drop examples without a label."""

    labels: list[str] = Field(min_length=1)
    on_error: Literal["raise", "skip"] | None = None
    drop_unlabeled: bool = False


class AllowedLabels(Cleaner):
    """Labels must come from an allowed list: a typo in one annotation ("biling") is an error
    naming its file and line, not a 151st class with one example."""

    name = "allowed_labels"
    tasks = ("classification",)
    Options = AllowedLabelsOptions
    options: AllowedLabelsOptions

    def clean(self, examples: Iterable[Example], removed: Removal) -> Iterator[Example]:
        allowed = set(self.options.labels)
        skip = self.options.on_error == "skip"
        for example in examples:
            if example.target is None:
                if self.options.drop_unlabeled:
                    removed(example, "no label")
                    continue
                yield example
            elif example.target in allowed:
                yield example
            elif skip:
                removed(example, "label not allowed")
            else:
                raise example_error(example, f'label "{example.target}" is not one of the allowed '
                                             f"labels ({_listing(self.options.labels)})")


def _listing(labels: list[str], limit: int = 8) -> str:
    shown = ", ".join(labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


CLEANERS = (UnicodeNormalize, NormalizeWhitespace, StripHtml, DropEmpty, FillMissing, LengthFilter,
            TokenLengthFilter, DropDuplicates, DropNearDuplicates, LabelConflicts, MaskPii,
            NormalizeLabels, AllowedLabels)


@hookimpl
def register_cleaners(register):
    """The built-in cleaners."""
    for cleaner in CLEANERS:
        register(cleaner)
