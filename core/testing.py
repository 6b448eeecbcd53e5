"""Helpers for testing tuneloop plugins: tiny random models, a cycle context, inline plugins.

Everything here works offline. The models are random and tiny (a few thousand parameters, a
vocabulary trained on the texts you pass), so a test can train one for a few epochs in seconds on a
CPU and still see it learn a trivially separable task. torch, transformers and tokenizers are
imported inside the functions: importing this module stays cheap.

A plugin's tests usually need only two helpers: ``register_plugin`` (the plugin, registered for a
``with`` block) and ``run_tiny_cycle`` (a real one-epoch cycle on a handful of examples with a tiny
model, a few seconds on a CPU)::

    from tuneloop.testing import register_plugin, run_tiny_cycle

    def test_a_cycle_scores_with_my_metric(tmp_path):
        cycle = run_tiny_cycle(tmp_path, plugins=[my_plugin],
                               config={"evaluation": {"metrics": ["accuracy", "my_metric"]}})
        assert "my_metric" in cycle.metrics["validation"]

Calling a trainer directly::

    from tuneloop.testing import cycle_context, tiny_bert

    def test_my_trainer(tmp_path):
        model = tiny_bert(tmp_path / "base", ["good movie", "bad movie"])
        context = cycle_context(tmp_path / "run", task="classification", start_model=model,
                                labels=["neg", "pos"], training={"epochs": 2})
        result = MyTrainer().train(context, splits, regularizers=[])
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerFast

    from tuneloop.components import Example, Metric
    from tuneloop.context import CycleContext

TokenizerStyle = Literal["bert", "gpt2"]

BERT_SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                       "sep_token": "[SEP]", "mask_token": "[MASK]"}
GPT2_SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<|endoftext|>",
                       "eos_token": "<|endoftext|>"}


def tiny_tokenizer(texts: Sequence[str],
                   style: TokenizerStyle = "bert") -> "PreTrainedTokenizerFast":
    """A word-level tokenizer trained on ``texts``: lowercased, split on whitespace and punctuation.

    ``style="bert"`` gives ``[PAD] [UNK] [CLS] [SEP] [MASK]`` and wraps every text as
    ``[CLS] text [SEP]``, like BERT. ``style="gpt2"`` gives ``<|endoftext|>`` as bos and eos, a
    separate ``<pad>`` and ``<unk>``, and adds nothing to a text, like GPT-2 (so a trainer must
    append eos itself). Words not in ``texts`` become the unknown token: pass every text a test
    will use.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if style not in ("bert", "gpt2"):
        raise ValueError(f'style must be "bert" or "gpt2", not {style!r}')
    special = BERT_SPECIAL_TOKENS if style == "bert" else GPT2_SPECIAL_TOKENS
    special_tokens = list(dict.fromkeys(special.values()))  # unique, in a fixed order

    backend = Tokenizer(models.WordLevel(unk_token=special["unk_token"]))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(list(texts),
                                trainers.WordLevelTrainer(special_tokens=special_tokens))
    if style == "bert":
        cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=512,
                                   model_input_names=["input_ids", "attention_mask"], **special)


def tiny_bert(path: str | Path, texts: Sequence[str]) -> str:
    """Save a random tiny BERT encoder and its tokenizer to ``path``; return ``str(path)``.

    The checkpoint is a bare ``BertModel`` (no task head), so
    ``AutoModelForSequenceClassification.from_pretrained(path, num_labels=n)`` works for any ``n``
    and initialises a fresh classifier, as it does for a real pretrained encoder. The weights are
    seeded: the same texts give the same checkpoint.
    """
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = tiny_tokenizer(texts, style="bert")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
                        pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(config)
    return _save(path, model, tokenizer)


def tiny_gpt2(path: str | Path, texts: Sequence[str]) -> str:
    """Save a random tiny GPT-2 language model and its tokenizer to ``path``; return ``str(path)``.

    The tokenizer has an eos token (also bos) and a separate pad token; 256 positions leave room for
    a prompt and a generated completion. The weights are seeded like :func:`tiny_bert`'s.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_tokenizer(texts, style="gpt2")
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return _save(path, model, tokenizer)


def _save(path: str | Path, model: Any, tokenizer: Any) -> str:
    from transformers.utils import logging as transformers_logging

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    bars_were_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # "Writing model shards" is noise in test output
    try:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    finally:
        if bars_were_enabled:
            transformers_logging.enable_progress_bar()
    return str(path)


def cycle_context(run_dir: str | Path, *, task: Literal["classification", "causal-lm"],
                  start_model: str, labels: list[str] | None = None,
                  metrics: Sequence["Metric"] = (), training: dict[str, Any] | None = None,
                  max_length: int = 64,
                  log: Callable[[int, dict[str, float]], None] | None = None) -> "CycleContext":
    """A ``CycleContext`` for calling a component directly, without a store or a config file.

    ``training`` holds ``training:`` section fields (``epochs``, ``batch_size``, ``eval_every``,
    ``select_metric``...); the data section names a source that is never read. Progress is quiet;
    ``log`` receives what the trainer streams through ``context.log``.
    """
    from tuneloop.config import ProjectConfig
    from tuneloop.context import CycleContext, Progress

    config = ProjectConfig.model_validate({
        "project": "test",
        "task": task,
        "model": {"name": start_model, "max_length": max_length},
        "data": {"sources": [{"type": "jsonl", "path": "unused.jsonl"}]},
        "training": training or {},
    })
    return CycleContext(cycle_id=1, config=config, store=None, run_dir=Path(run_dir),
                        start_model=start_model, seed=config.training.seed, labels=labels,
                        metrics=list(metrics), progress=Progress(quiet=True), log_callback=log)


@contextlib.contextmanager
def register_plugin(plugin: Any, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` (a module, class or instance with hookimpls) for the ``with`` block.

    Yields the name it was registered under. The plugin is unregistered in ``finally``, so a failing
    test does not leave its plugin behind for the next one. A plugin that is already registered
    (installed and loaded through its entry point) is left as it is and its name yielded, so a
    plugin's tests pass whether or not the plugin is installed.
    """
    from tuneloop import plugin_manager

    plugin_manager.load_plugins()
    if plugin_manager.pm.is_registered(plugin):  # installed, and loaded through its entry point
        yield plugin_manager.pm.get_name(plugin)
        return
    registered = plugin_manager.register(plugin, name=name)
    try:
        yield registered
    finally:
        plugin_manager.unregister(plugin)


# --------------------------------------------------------------------------------------------------
# A whole cycle in a few seconds, for plugin authors
# --------------------------------------------------------------------------------------------------

TINY_INTENTS = {  # every example of a label says its first word, and one of the other two
    "billing": ["invoice", "refund", "payment"],
    "shipping": ["parcel", "delivery", "courier"],
    "account": ["password", "login", "username"],
}
TINY_OPENERS = ["help with", "question about", "problem with", "hello about", "urgent"]
TINY_THINGS = ["car", "door", "kite", "scarf", "mug", "ball", "chair", "lamp", "boat", "shirt"]
TINY_COLOURS = ["red", "blue", "green"]


def tiny_examples(task: Literal["classification", "causal-lm"] = "classification",
                  per_label: int = 10) -> list["Example"]:
    """A handful of distinct examples a tiny model can learn: one word gives the answer away.

    Classification: three intents (``billing``, ``shipping``, ``account``), ``per_label`` each
    (at most 10), e.g. ``"help with invoice refund"``. Causal LM: ``per_label`` prompts per
    colour (at most 10), e.g. ``"the kite is red . colour :"`` with the completion ``" red"``.
    No two inputs are near duplicates, so the cycle's leakage check has nothing to refuse.
    """
    from tuneloop.components import Example

    limit = len(TINY_OPENERS) * 2 if task == "classification" else len(TINY_THINGS)
    if not 1 <= per_label <= limit:
        raise ValueError(f"per_label must be 1 to {limit} for {task}, not {per_label}")
    examples = []
    if task == "classification":
        for label, words in TINY_INTENTS.items():
            for number in range(per_label):
                text = f"{TINY_OPENERS[number // 2]} {words[0]} {words[1 + number % 2]}"
                examples.append(Example(input=text, target=label))
    else:
        for number in range(per_label):
            for colour in TINY_COLOURS:
                examples.append(Example(input=f"the {TINY_THINGS[number]} is {colour} . colour :",
                                        target=f" {colour}"))
    return examples


class TinyCycle:
    """A cycle run by :func:`run_tiny_cycle`: its result, and what it stored, ready to assert on."""

    def __init__(self, result: Any, config: Any):
        self.result = result  # tuneloop.cycle.CycleResult
        self.config = config  # the validated ProjectConfig

    @property
    def cycle_id(self) -> int:
        return self.result.cycle_id

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """``{"validation": {...}, "test": {...}}``, as the cycle computed them."""
        return self.result.metrics

    def store(self) -> Any:
        """The project's ``tuneloop.store.Store`` (use it in a ``with`` block)."""
        from tuneloop.store import Store

        return Store(self.config.database_path)

    def record(self) -> dict[str, Any]:
        """The cycle's row, JSON columns decoded: ``plugins`` (every plugin with its version),
        ``components`` (each component the cycle used, with its plugin), ``stats``, ``status``."""
        import json

        with self.store() as store:
            row = dict(store.cycle(self.cycle_id))
        for column in ("config", "plugins", "components", "stats", "timings"):
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
        return row

    def examples(self, split: str | None = None) -> list[dict[str, Any]]:
        """The examples the cycle stored (``provenance`` decoded), of one split or all."""
        import json

        with self.store() as store:
            rows = [dict(row) for row in store.examples(self.cycle_id, split)]
        for row in rows:
            row["provenance"] = json.loads(row["provenance"])
        return rows

    def queue(self) -> list[dict[str, Any]]:
        """The outputs the review sampler queued, in queue order (``output_id``, ``input``,
        ``output``, ``confidence``, ``reference``...)."""
        with self.store() as store:
            return store.query(
                "SELECT q.priority, q.sampler, o.id AS output_id, o.example_id, o.input, o.output, "
                "o.reference, o.confidence FROM review_queue q "
                "JOIN outputs o ON o.id = q.output_id "
                "WHERE q.cycle_id = ? ORDER BY q.priority", [self.cycle_id])

    def rate(self, output_id: int, verdict: str, *, corrected: str | None = None,
             score: int | None = None, reviewer: str = "tester") -> int:
        """Rate one of this cycle's outputs as an expert would; returns the rating id.

        The next :func:`run_tiny_cycle` in the same folder offers the rating to the feedback
        policies, as a real next cycle does.
        """
        from tuneloop.auth import create_reviewer

        with self.store() as store:
            account = store.reviewer(reviewer)
            reviewer_id = (account["id"] if account is not None
                           else create_reviewer(store, reviewer, "not-a-secret-tiny-cycle"))
            return store.add_rating(reviewer_id=reviewer_id, output_id=output_id,
                                    verdict=verdict, corrected=corrected, score=score)


def run_tiny_cycle(directory: str | Path, *,
                   task: Literal["classification", "causal-lm"] = "classification",
                   examples: Sequence["Example"] | None = None,
                   config: dict[str, Any] | None = None,
                   plugins: Sequence[Any] = (),
                   vocabulary: Sequence[str] = ()) -> TinyCycle:
    """Run one real cycle (one epoch, a tiny random model, a handful of examples) in ``directory``.

    This is the cycle ``tuneloop run`` runs, end to end: data, training, evaluation, review queue,
    promotion, with the store in ``directory/tuneloop.db``. Call it again with the same
    ``directory`` for the next cycle (after :meth:`TinyCycle.rate`, to test feedback).

    :param examples: the data (default :func:`tiny_examples`), written to ``data.jsonl`` and read
        by the built-in ``jsonl`` source. To test a data source, point ``data.sources`` at it in
        ``config`` instead.
    :param config: config fields merged over the defaults (dicts merge, lists replace), e.g.
        ``{"evaluation": {"metrics": ["accuracy", "my_metric"]}}`` or
        ``{"review": {"sampler": "my_sampler"}}``.
    :param plugins: plugin objects (modules, classes or instances with hookimpls) registered for
        the cycle (an installed plugin is already loaded: leave it out, or pass it, either works).
    :param vocabulary: extra texts for the tiny model's word-level tokenizer; the texts the cycle
        reads are always in it. The model is built on the first call and reused after.
    """
    import yaml

    from tuneloop import registries
    from tuneloop.config import load_config
    from tuneloop.cycle import prepare_data, run_cycle

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if examples is not None or not (directory / "data.jsonl").exists():
        _write_examples(directory / "data.jsonl", examples or tiny_examples(task))
    model_dir = directory / "tiny-model"
    settings: dict[str, Any] = {
        "project": "tiny",
        "task": task,
        "model": {"name": str(model_dir), "max_length": 32},
        "data": {"sources": [{"type": "jsonl", "path": "data.jsonl"}],
                 "split": {"train": 0.5, "validation": 0.2, "test": 0.1, "review": 0.2,
                           "seed": 3}},
        "training": {"epochs": 1, "learning_rate": 0.005, "batch_size": 8, "seed": 1,
                     "max_new_tokens": 3},
        "review": {"size": 5},
    }
    _merge(settings, config or {})
    config_path = directory / "tuneloop.yaml"
    config_path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")

    with contextlib.ExitStack() as stack:
        for plugin in plugins:
            stack.enter_context(register_plugin(plugin, name=_plugin_name(plugin)))
        project = load_config(config_path)
        if not model_dir.exists():
            prepared = prepare_data(project, registries.build(), store=None)
            texts = [text for split in prepared.splits.values() for example in split
                     for text in (example.input, example.target or "")]
            make = tiny_bert if task == "classification" else tiny_gpt2
            make(model_dir, texts + list(vocabulary))
        return TinyCycle(run_cycle(project, quiet=True), project)


def _plugin_name(plugin: Any) -> str:
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    return str(name)


def _write_examples(path: Path, examples: Sequence["Example"]) -> None:
    import json

    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            row = {"input": example.input, "target": example.target}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
