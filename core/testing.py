"""Helpers for testing tuneloop plugins: tiny random models, a cycle context, inline plugins.

Everything here works offline. The models are random and tiny (a few thousand parameters, a
vocabulary trained on the texts you pass), so a test can train one for a few epochs in seconds on a
CPU and still see it learn a trivially separable task. torch, transformers and tokenizers are
imported inside the functions: importing this module stays cheap.

Typical use in a plugin's tests::

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

    from tuneloop.components import Metric
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
    test does not leave its plugin behind for the next one.
    """
    from tuneloop import plugin_manager

    registered = plugin_manager.register(plugin, name=name)
    try:
        yield registered
    finally:
        plugin_manager.unregister(plugin)
