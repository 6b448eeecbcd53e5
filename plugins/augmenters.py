"""Built-in augmenters: label-preserving variants of training examples.

=====================  ===========================================================================
``char_noise``         typos: keyboard-neighbour substitutions (default), swaps, deletions,
                       doubled letters
``word_dropout``       words left out
``word_swap``          two words trade places
``word_insert``        a synonym of a word inserted next to it (or the word repeated)
``synonym_replace``    words replaced by synonyms from an offline thesaurus (built in, a file of
                       your own, or an installed WordNet)
``paraphrase``         rewrites by any seq2seq or causal language model named in the config
``back_translation``   a round trip through another language with two translation models
``balance_classes``    rarer labels oversampled (copies) or upweighted to match the common ones
=====================  ===========================================================================

The cycle hands an augmenter the training split only, so a variant can never reach validation or
test. Every variant records where it came from: ``provenance = {"kind": "augmented", "from":
<original id>, "augmenter": <name>}``, so metrics and lineage can tell it from real data. Variants
keep the original's target, weight, group and source; every variant differs from its original and
from the other variants of the same example (an exact copy would only reweight the example), except
``balance_classes``, whose copies are the point (each has its own id).

The noise and synonym augmenters are for classification: a causal-LM completion often copies from
its prompt (names, codes, quotes), and a typo or a synonym in the prompt would make the unchanged
completion wrong. Paraphrase and back-translation rewrite the input for either task; check a sample
of their output before trusting it (``tuneloop data inspect`` shows some). All augmenters are
deterministic given the examples and the cycle's seeded ``rng`` (the model-based ones seed torch
from it).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import Field, model_validator

from tuneloop import Augmenter, DataError, Example, Options, TuneloopError, hookimpl
from tuneloop.components import content_id

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


def variant_of(original: Example, text: str, augmenter: str, **extra: Any) -> Example:
    """A new training example with ``text`` as input, everything else from ``original``."""
    return Example(input=text, target=original.target, weight=original.weight,
                   group=original.group, source=original.source, split="train",
                   provenance={"kind": "augmented", "from": original.id, "augmenter": augmenter,
                               **extra})


def _key(text: str) -> str:
    return " ".join(text.lower().split())


class CopiesOptions(Options):
    """``copies``: variants made per example (fewer when the text allows fewer distinct ones)."""

    copies: int = Field(1, ge=1, le=100)


class VariantAugmenter(Augmenter):
    """An augmenter that makes up to ``copies`` distinct variants of each labelled example by
    calling ``vary(text, rng)`` repeatedly; ``vary`` returns ``None`` when it cannot vary a text."""

    tasks = ("classification",)

    def vary(self, text: str, rng: random.Random) -> str | None:
        raise NotImplementedError

    def augment(self, examples: list[Example], rng: random.Random) -> Iterator[Example]:
        copies = self.options.copies
        for original in examples:
            if original.target is None:
                continue
            made = {_key(original.input)}
            for _ in range(3 * copies):  # bounded: "ab" has only so many distinct variants
                if len(made) > copies:
                    break
                text = self.vary(original.input, rng)
                if text is None:
                    break
                if _key(text) in made:
                    continue
                made.add(_key(text))
                yield variant_of(original, text, self.name)


# --------------------------------------------------------------------------------------------------
# Character noise
# --------------------------------------------------------------------------------------------------

CharOperation = Literal["neighbour", "swap", "delete", "double"]


class CharNoiseOptions(CopiesOptions):
    """``probability``: chance that each letter gets a typo; ``operations``: which typos
    (``neighbour``: a key next to it, ``swap``: with the next letter, ``delete``, ``double``)."""

    probability: float = Field(0.05, gt=0, le=1)
    operations: list[CharOperation] = Field(["neighbour"], min_length=1)


class CharNoise(VariantAugmenter):
    """Typos in the input; target, weight, group and source are kept.

    Real users mistype; a classifier finetuned on clean text only is brittle to "chekc my balnace".
    Only ASCII letters are changed (digits and punctuation can change meaning: "7 days" is not
    "8 days"), and case is kept. Every variant differs from its original: when no letter was hit by
    chance, one letter is changed anyway. Unlabeled examples are skipped (no label to preserve).
    """

    name = "char_noise"
    Options = CharNoiseOptions
    options: CharNoiseOptions

    def vary(self, text: str, rng: random.Random) -> str | None:
        positions = [i for i, ch in enumerate(text) if ch.isascii() and ch.lower() in NEIGHBOURS]
        if not positions:
            return None
        chars = list(text)
        hit = [i for i in positions if rng.random() < self.options.probability]
        if not hit:
            hit = [rng.choice(positions)]
        operations = self.options.operations
        for i in sorted(hit, reverse=True):  # from the end, so deletions keep earlier positions
            operation = operations[0] if len(operations) == 1 else rng.choice(operations)
            if operation == "neighbour":
                typo = rng.choice(NEIGHBOURS[chars[i].lower()])
                chars[i] = typo.upper() if chars[i].isupper() else typo
            elif operation == "swap" and i + 1 < len(chars) and chars[i + 1] != chars[i]:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            elif operation == "delete" and len(chars) > 1:
                del chars[i]
            elif operation == "double":
                chars.insert(i, chars[i])
        return "".join(chars)


# --------------------------------------------------------------------------------------------------
# Word-level noise
# --------------------------------------------------------------------------------------------------


class WordNoiseOptions(CopiesOptions):
    """``probability``: chance that each word is affected (at least one always is)."""

    probability: float = Field(0.1, gt=0, le=1)


class WordDropout(VariantAugmenter):
    """Leaves words out ("please check my balance" -> "check my balance").

    Teaches the classifier not to lean on any one word. At least one word is dropped and one kept;
    inputs of a single word are not changed.
    """

    name = "word_dropout"
    Options = WordNoiseOptions
    options: WordNoiseOptions

    def vary(self, text: str, rng: random.Random) -> str | None:
        words = text.split()
        if len(words) < 2:
            return None
        kept = [word for word in words if rng.random() >= self.options.probability]
        if len(kept) == len(words):
            drop = rng.randrange(len(words))
            kept = words[:drop] + words[drop + 1:]
        if not kept:
            kept = [rng.choice(words)]
        return " ".join(kept)


class WordSwap(VariantAugmenter):
    """Swaps pairs of words ("my balance check please"): robustness to word order.

    The number of swaps is ``probability`` times the number of words (at least one); inputs with
    fewer than two distinct words are not changed.
    """

    name = "word_swap"
    Options = WordNoiseOptions
    options: WordNoiseOptions

    def vary(self, text: str, rng: random.Random) -> str | None:
        words = text.split()
        if len(set(words)) < 2:
            return None
        for _ in range(max(1, round(self.options.probability * len(words)))):
            first, second = rng.sample(range(len(words)), 2)
            words[first], words[second] = words[second], words[first]
        return " ".join(words)


# --------------------------------------------------------------------------------------------------
# Synonyms
# --------------------------------------------------------------------------------------------------


class ThesaurusOptions(CopiesOptions):
    """Where synonyms come from: ``builtin`` (shipped with tuneloop), ``file`` (``path`` to a JSON
    object ``{"word": ["synonym", ...]}``, or a text file with one group of interchangeable words
    per line, comma-separated), or ``wordnet`` (nltk's WordNet, if its corpus is installed)."""

    source: Literal["builtin", "file", "wordnet"] = "builtin"
    path: str | None = None

    @model_validator(mode="after")
    def _path_for_file(self) -> "ThesaurusOptions":
        if (self.source == "file") != (self.path is not None):
            raise ValueError("path is needed with source: file (and only then)")
        return self


_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


class Thesaurus:
    """Synonyms of a lower-cased word, from one of the offline sources; loaded once."""

    def __init__(self, source: str, path: str | None):
        self.source = source
        self.table: dict[str, list[str]] = {}
        self._wordnet: Any = None
        if source == "builtin":
            from tuneloop.plugins.synonyms_en import thesaurus

            self.table = thesaurus()
        elif source == "file":
            self.table = self._read(str(path))
        else:
            self._wordnet = self._open_wordnet()

    def synonyms(self, word: str) -> list[str]:
        word = word.lower()
        if self._wordnet is None:
            return self.table.get(word, [])
        found: list[str] = []
        for synset in self._wordnet.synsets(word):
            for lemma in synset.lemma_names():
                candidate = lemma.replace("_", " ").lower()
                if candidate != word and candidate not in found:
                    found.append(candidate)
        return found

    @staticmethod
    def _read(path: str) -> dict[str, list[str]]:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(path, "thesaurus file not found") from None
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(path, f"cannot read the thesaurus: {error}") from None
        table: dict[str, list[str]] = {}
        if file.suffix.lower() == ".json":
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as error:
                raise DataError(path, f"invalid JSON: {error.msg}", error.lineno) from None
            if not isinstance(raw, dict) or not all(
                    isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v)
                    for k, v in raw.items()):
                raise DataError(path, 'a JSON thesaurus maps each word to a list of synonyms: '
                                      '{"word": ["synonym", ...]}')
            for word, synonyms in raw.items():
                table[word.lower()] = [s for s in synonyms if s.lower() != word.lower()]
            return table
        for number, line in enumerate(text.splitlines(), 1):
            group = [word.strip().lower() for word in line.split(",") if word.strip()]
            if len(group) == 1:
                raise DataError(path, "a line needs two or more comma-separated words", number)
            for word in group:
                others = table.setdefault(word, [])
                others.extend(w for w in group if w != word and w not in others)
        return table

    @staticmethod
    def _open_wordnet() -> Any:
        try:
            from nltk.corpus import wordnet

            wordnet.ensure_loaded()
        except LookupError:
            raise TuneloopError('synonym_replace: source "wordnet" needs the WordNet corpus '
                                '(python -m nltk.downloader wordnet on a machine with network); '
                                'or use source: builtin or file') from None
        return wordnet


class SynonymOptions(ThesaurusOptions):
    """``probability``: chance that each word with synonyms is replaced (at least one is)."""

    probability: float = Field(0.2, gt=0, le=1)


def _match_case(word: str, replacement: str) -> str:
    if word.isupper() and len(word) > 1:
        return replacement.upper()
    if word[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


class SynonymReplace(VariantAugmenter):
    """Replaces words with synonyms ("help me fix my account" -> "assist me repair my account").

    Teaches the classifier that the label lives in the meaning, not in one wording. Works offline:
    the thesaurus is the built-in one (everyday and support vocabulary, only unambiguous pairs), a
    file of your own, or an installed WordNet. Case is kept ("Help" -> "Assist").
    """

    name = "synonym_replace"
    Options = SynonymOptions
    options: SynonymOptions

    def __init__(self, options: Any = None):
        super().__init__(options)
        self._thesaurus: Thesaurus | None = None

    @property
    def thesaurus(self) -> Thesaurus:
        if self._thesaurus is None:
            self._thesaurus = Thesaurus(self.options.source, self.options.path)
        return self._thesaurus

    def vary(self, text: str, rng: random.Random) -> str | None:
        matches = [(match, synonyms) for match in _WORD.finditer(text)
                   if (synonyms := self.thesaurus.synonyms(match.group()))]
        if not matches:
            return None
        chosen = [item for item in matches if rng.random() < self.options.probability]
        if not chosen:
            chosen = [rng.choice(matches)]
        pieces, last = [], 0
        for match, synonyms in chosen:
            pieces += [text[last:match.start()], _match_case(match.group(), rng.choice(synonyms))]
            last = match.end()
        return "".join(pieces) + text[last:]


class WordInsert(SynonymReplace):
    """Inserts a synonym of a word next to it ("fix my account" -> "fix repair my account").

    Easy Data Augmentation's random insertion: an extra, related word the classifier must learn to
    read past. Where no word has a synonym, a word of the text is repeated instead.
    """

    name = "word_insert"

    def vary(self, text: str, rng: random.Random) -> str | None:
        words = text.split()
        if not words:
            return None
        inserts = max(1, round(self.options.probability * len(words)))
        for _ in range(inserts):
            candidates = [w for w in words if self.thesaurus.synonyms(w.strip(".,!?;:"))]
            if candidates:
                word = rng.choice(candidates)
                extra = rng.choice(self.thesaurus.synonyms(word.strip(".,!?;:")))
            else:
                extra = rng.choice(words).strip(".,!?;:") or rng.choice(words)
            words.insert(rng.randrange(len(words) + 1), extra.lower())
        return " ".join(words)


# --------------------------------------------------------------------------------------------------
# Model-based rewrites: paraphrase and back-translation
# --------------------------------------------------------------------------------------------------


class GenerationOptions(Options):
    """How a model generates: sampling with ``temperature`` and ``top_p`` (``do_sample: false`` for
    beam-free greedy output), ``max_new_tokens``, ``batch_size`` inputs at a time, on ``device``
    (``auto``: a GPU when there is one)."""

    max_new_tokens: int = Field(48, ge=1)
    do_sample: bool = True
    temperature: float = Field(0.9, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    batch_size: int = Field(16, ge=1)
    device: str = "auto"


class TextGenerator:
    """One model that rewrites texts: seq2seq (T5, BART, MarianMT) or causal (GPT-style), found
    from its config, loaded once, with its tokenizer. ``prompt`` wraps each text (``{text}``)."""

    def __init__(self, location: str, prompt: str, options: GenerationOptions, owner: str):
        import torch
        from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM,
                                  AutoTokenizer)

        from transformers.utils import logging as transformers_logging

        bars = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()  # "Loading weights" bars are noise here
        try:
            config = AutoConfig.from_pretrained(location)
            self.tokenizer = AutoTokenizer.from_pretrained(location)
            self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
            model_class = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
            self.model = model_class.from_pretrained(location)
        except (OSError, ValueError) as error:
            raise TuneloopError(f'{owner}: cannot load the model "{location}": '
                                f"{str(error).strip().splitlines()[0]}") from None
        finally:
            if bars:
                transformers_logging.enable_progress_bar()
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.model.to(device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not self.seq2seq:
            self.tokenizer.padding_side = "left"
        self.prompt = prompt
        self.options = options

    def generate(self, texts: list[str], copies: int, seed: int) -> list[list[str]]:
        """``copies`` outputs per text (sampled, or the same greedy one), stripped of the prompt."""
        import torch

        results: list[list[str]] = []
        options = self.options
        torch.manual_seed(seed)
        for begin in range(0, len(texts), options.batch_size):
            batch = [self.prompt.format(text=text) for text in texts[begin:begin + options.batch_size]]
            encoded = self.tokenizer(batch, return_tensors="pt", padding=True, truncation=True,
                                     max_length=256).to(self.device)
            with torch.no_grad():
                output = self.model.generate(
                    **encoded, max_new_tokens=options.max_new_tokens, do_sample=options.do_sample,
                    temperature=options.temperature if options.do_sample else None,
                    top_p=options.top_p if options.do_sample else None,
                    num_return_sequences=copies,
                    pad_token_id=self.tokenizer.pad_token_id)
            if not self.seq2seq:
                output = output[:, encoded["input_ids"].shape[1]:]
            decoded = self.tokenizer.batch_decode(output, skip_special_tokens=True)
            for index in range(len(batch)):
                outputs = decoded[index * copies:(index + 1) * copies]
                results.append([self._clean(text) for text in outputs])
        return results

    def _clean(self, text: str) -> str:
        if not self.seq2seq:
            text = text.split("\n")[0]  # a causal model runs on past the rewrite
        return " ".join(text.split())


class ModelAugmenter(Augmenter):
    """Shared parts of the model-based augmenters: model locations resolve like ``model.name``
    (hub id, folder relative to the config, ``package:<module>/<folder>``); ``base_dir`` is set by
    the cycle. Outputs that are empty or equal to their input (or to another output) are dropped."""

    base_dir: Path | None = None

    def _location(self, name: str) -> str:
        from tuneloop.config import resolve_model_name

        return resolve_model_name(name, self.base_dir or Path.cwd())

    def _variants(self, originals: list[Example], outputs: list[list[str]],
                  **extra: Any) -> Iterator[Example]:
        for original, texts in zip(originals, outputs):
            made = {_key(original.input)}
            for text in texts:
                if text and _key(text) not in made:
                    made.add(_key(text))
                    yield variant_of(original, text, self.name, **extra)


class ParaphraseOptions(CopiesOptions, GenerationOptions):
    """``model``: any seq2seq or causal LM; ``prompt``: how an input is put to it (``{text}`` is the
    input; a causal model continues the prompt, its first line is the paraphrase)."""

    model: str = Field(min_length=1)
    prompt: str = "paraphrase: {text}"

    @model_validator(mode="after")
    def _prompt_has_text(self) -> "ParaphraseOptions":
        if "{text}" not in self.prompt:
            raise ValueError("prompt must contain {text}, where the input goes")
        return self


class Paraphrase(ModelAugmenter):
    """Rewrites each labelled input with a language model named in the config.

    A paraphrase model (a T5 finetuned on paraphrases, or an instruction-tuned causal LM with a
    prompt such as ``"Rewrite in other words: {text}\\nRewrite:"``) gives fluent variants that
    typos cannot. The model is loaded once per cycle; its outputs are seeded from the cycle's rng.
    """

    name = "paraphrase"
    Options = ParaphraseOptions
    options: ParaphraseOptions

    def augment(self, examples: list[Example], rng: random.Random) -> Iterator[Example]:
        originals = [example for example in examples if example.target is not None]
        if not originals:
            return
        generator = TextGenerator(self._location(self.options.model), self.options.prompt,
                                  self.options, f'augmenter "{self.name}"')
        outputs = generator.generate([e.input for e in originals], self.options.copies,
                                     rng.randrange(2 ** 31))
        yield from self._variants(originals, outputs, model=self.options.model)


class BackTranslationOptions(CopiesOptions, GenerationOptions):
    """``forward_model`` translates into the pivot language, ``backward_model`` back (e.g.
    Helsinki-NLP/opus-mt-en-de and opus-mt-de-en); each has its prompt (``{text}``). The way there
    samples (so ``copies`` round trips differ); the way back is greedy unless
    ``backward_do_sample``."""

    forward_model: str = Field(min_length=1)
    backward_model: str = Field(min_length=1)
    forward_prompt: str = "{text}"
    backward_prompt: str = "{text}"
    backward_do_sample: bool = False


class BackTranslation(ModelAugmenter):
    """Translates each labelled input to a pivot language and back: a paraphrase that keeps the
    meaning because translation models are trained to. ``copies`` sampled round trips per input
    (the forward pass samples; the way back is greedy by default)."""

    name = "back_translation"
    Options = BackTranslationOptions
    options: BackTranslationOptions

    def augment(self, examples: list[Example], rng: random.Random) -> Iterator[Example]:
        originals = [example for example in examples if example.target is not None]
        if not originals:
            return
        options = self.options
        owner = f'augmenter "{self.name}"'
        forward = TextGenerator(self._location(options.forward_model), options.forward_prompt,
                                options, owner)
        pivots = forward.generate([e.input for e in originals], options.copies,
                                  rng.randrange(2 ** 31))
        del forward
        greedy = options.model_copy(update={"do_sample": options.backward_do_sample})
        backward = TextGenerator(self._location(options.backward_model), options.backward_prompt,
                                 greedy, owner)
        flat = [pivot for group in pivots for pivot in group]
        back = [outputs[0] for outputs in backward.generate(flat, 1, rng.randrange(2 ** 31))]
        regrouped = [back[i * options.copies:(i + 1) * options.copies] for i in range(len(originals))]
        yield from self._variants(originals, regrouped, pivot_model=options.forward_model)


# --------------------------------------------------------------------------------------------------
# Class balance
# --------------------------------------------------------------------------------------------------


class BalanceOptions(Options):
    """``target``: bring every label up to the most common one's count (``max``), the mean, or a
    number; ``method``: ``oversample`` (copies) or ``weight`` (rarer labels' examples weigh more,
    no copies); ``max_factor``: no label grows more than this many times (a label with 2 examples
    copied 500 times teaches those 2 sentences, not the label)."""

    target: Literal["max", "mean"] | int = "max"
    method: Literal["oversample", "weight"] = "oversample"
    max_factor: float = Field(10.0, ge=1)


class BalanceClasses(Augmenter):
    """Evens out the label distribution of the training split.

    A classifier trained on 500 "balance" and 20 "fraud" examples learns that fraud is rare, which
    is true, and that predicting it rarely is right, which costs recall where it matters most.
    ``oversample`` adds copies of a rarer label's examples, cycling through them in a seeded random
    order so each is copied as evenly as possible; each copy has its own id and records its original
    (``provenance.from``) and copy number. ``weight`` adds one copy of each rarer-label example
    carrying the extra weight its label needs (20 examples brought up to 500 add 20 copies of
    weight 24, not 480 copies): the same total weight, epochs no longer. Classification only.
    """

    name = "balance_classes"
    tasks = ("classification",)
    Options = BalanceOptions
    options: BalanceOptions

    def augment(self, examples: list[Example], rng: random.Random) -> Iterator[Example]:
        by_label: dict[str, list[Example]] = defaultdict(list)
        for example in examples:
            if example.target is not None and example.provenance.get("kind") != "augmented":
                by_label[example.target].append(example)
        if len(by_label) < 2:
            return
        counts = Counter({label: len(group) for label, group in by_label.items()})
        goal = self._goal(counts)
        for label in sorted(by_label):
            group = by_label[label]
            wanted = min(goal, int(len(group) * self.options.max_factor)) - len(group)
            if wanted <= 0:
                continue
            if self.options.method == "weight":
                yield from self._reweighted(group, wanted)
                continue
            order = list(group)
            rng.shuffle(order)
            for number in range(wanted):
                original = order[number % len(order)]
                copy = number // len(order) + 1
                yield Example(input=original.input, target=original.target,
                              weight=original.weight, group=original.group, source=original.source,
                              split="train",
                              id=content_id(original.input, original.target, "copy", copy),
                              provenance={"kind": "augmented", "from": original.id,
                                          "augmenter": self.name, "copy": copy})

    def _goal(self, counts: Counter[str]) -> int:
        target = self.options.target
        if target == "max":
            return max(counts.values())
        if target == "mean":
            return round(sum(counts.values()) / len(counts))
        return int(target)

    def _reweighted(self, group: list[Example], wanted: int) -> Iterator[Example]:
        """One copy per example carrying the extra weight, so the label's total weight reaches
        the goal without repeating sentences many times."""
        extra = wanted / len(group)
        for original in group:
            yield Example(input=original.input, target=original.target,
                          weight=original.weight * extra, group=original.group,
                          source=original.source, split="train",
                          id=content_id(original.input, original.target, "weight"),
                          provenance={"kind": "augmented", "from": original.id,
                                      "augmenter": self.name, "weight_factor": extra})


AUGMENTERS = (CharNoise, WordDropout, WordSwap, WordInsert, SynonymReplace, Paraphrase,
              BackTranslation, BalanceClasses)


@hookimpl
def register_augmenters(register):
    """The built-in augmenters."""
    for augmenter in AUGMENTERS:
        register(augmenter)

