"""The built-in trainers, on tiny random models built in the test (no network, seconds on a CPU).

Training runs are shared per module (fixtures with module scope): one classifier and one causal LM
are trained once and several tests read what came out.
"""

from __future__ import annotations

import collections
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tuneloop import Example, Regularizer, Trainer, TuneloopError  # noqa: E402
from tuneloop.errors import ConfigError, DataError  # noqa: E402
from tuneloop.plugins.metrics import F1, Accuracy, Perplexity  # noqa: E402
from tuneloop.plugins.regularizers import Dropout  # noqa: E402
from tuneloop.plugins.trainers import causal_lm, classification, register_trainers  # noqa: E402
from tuneloop.plugins.trainers.recipe import TaskRecipe  # noqa: E402
from tuneloop.registries import Registry  # noqa: E402
from tuneloop.testing import cycle_context, tiny_bert, tiny_gpt2, tiny_tokenizer  # noqa: E402
from training_data import sentiment_examples  # noqa: E402

@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models train several times faster on one thread than on two contended ones."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class RecordingRegularizer(Regularizer):
    """Records every call the trainer makes to it, and makes one visible edit to the arguments."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()
        self.configured_args: dict = {}
        self.prepared_model = None
        self.train_begin_args = None

    def configure(self, args):
        self.calls["configure"] += 1
        self.configured_args = dict(args)
        args["max_grad_norm"] = 0.5

    def prepare(self, model):
        self.calls["prepare"] += 1
        self.prepared_model = model
        return model

    def penalty(self, model):
        import torch

        self.calls["penalty"] += 1
        return torch.zeros(())

    def callbacks(self):
        from transformers import TrainerCallback

        recorder = self

        class Recorder(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                recorder.calls["on_train_begin"] += 1
                recorder.train_begin_args = args

            def on_step_end(self, args, state, control, **kwargs):
                recorder.calls["on_step_end"] += 1

        return [Recorder()]


# --------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------


def test_importing_the_plugins_imports_no_ml_library():
    code = ("import sys, tuneloop.plugins.trainers, tuneloop.plugins.metrics, "
            "tuneloop.plugins.regularizers; "
            "print(sorted({'torch', 'transformers', 'evaluate'} & set(sys.modules)))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "[]"


def test_register_trainers_gives_valid_trainers_for_each_task():
    registry = Registry("trainers", Trainer)
    register_trainers(register=lambda component: registry.add(component, "builtin"))
    assert registry.names() == ["causal_lm_sft", "dpo", "kto", "sequence_classification"]
    assert registry.get("sequence_classification").tasks == ("classification",)
    for name in ("causal_lm_sft", "dpo", "kto"):
        assert registry.get(name).tasks == ("causal-lm",)


def test_the_trainers_are_found_through_the_registries_with_their_options():
    from tuneloop import registries

    found = registries.build().trainers
    classifier = found.get("sequence_classification")
    options = classifier.Options.model_validate({"multi_label": True, "class_weights": "balanced"})
    assert classifier(options).options.multi_label
    with pytest.raises(Exception, match="threshold"):
        classifier.Options.model_validate({"threshold": 1.5})
    assert found.get("dpo").Options().beta == 0.1
    assert found.get("kto").Options().undesirable_weight == 1.0
    assert found.entry("dpo").plugin == "tuneloop.plugins.trainers"


# --------------------------------------------------------------------------------------------------
# Sequence classification
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    train, validation = sentiment_examples(64, seed=1), sentiment_examples(12, seed=2)
    base = tiny_bert(tmp_path_factory.mktemp("bert"), [e.input for e in train + validation])
    return base, train, validation


@pytest.fixture(scope="module")
def trained_classifier(sentiment, tmp_path_factory):
    base, train, validation = sentiment
    logs: list[tuple[int, dict]] = []
    regularizer = RecordingRegularizer()
    context = cycle_context(tmp_path_factory.mktemp("run"), task="classification",
                            start_model=base, labels=["neg", "pos"], metrics=[Accuracy(), F1()],
                            training={"epochs": 8, "learning_rate": 5e-3, "batch_size": 8},
                            log=lambda step, figures: logs.append((step, figures)))
    trainer = classification.SequenceClassificationTrainer()
    result = trainer.train(context, {"train": train, "validation": validation}, [regularizer])
    evaluations = [entry for entry in result.history if "eval_f1" in entry]
    return trainer, context, result, evaluations, regularizer, logs


def test_classifier_learns_the_toy_task(trained_classifier):
    _, _, result, evaluations, _, _ = trained_classifier
    assert len(evaluations) == 8  # eval_every: epoch
    assert evaluations[0]["eval_accuracy"] <= 0.6  # chance, before it has learned
    assert result.best_metric >= 0.9
    assert evaluations[-1]["eval_loss"] < evaluations[0]["eval_loss"] - 0.3


def test_best_checkpoint_is_kept_and_the_rest_deleted(trained_classifier):
    _, context, result, evaluations, _, _ = trained_classifier
    best = max(evaluations, key=lambda entry: entry["eval_f1"])  # the first of equals
    assert result.best_metric == pytest.approx(best["eval_f1"])
    assert result.best_step == best["step"]
    assert result.global_step == evaluations[-1]["step"]
    saved = {path.name for path in (context.run_dir / "model").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= saved
    assert not (context.run_dir / "checkpoints").exists()


def test_predict_reloads_the_best_model(trained_classifier, sentiment):
    trainer, context, result, evaluations, _, _ = trained_classifier
    _, _, validation = sentiment
    predictions = trainer.predict(result.model_dir, validation + [Example("great plot")], context)

    assert [p.example_id for p in predictions[:-1]] == [e.id for e in validation]
    # the saved model is the best checkpoint: predict reproduces its validation figures
    best = next(entry for entry in evaluations if entry["step"] == result.best_step)
    correct = sum(p.output == e.target for p, e in zip(predictions, validation))
    assert correct / len(validation) == pytest.approx(best["eval_accuracy"])
    mean_loss = sum(p.extra["loss"] for p in predictions[:-1]) / len(validation)
    assert mean_loss == pytest.approx(best["eval_loss"], rel=1e-4)
    for prediction, example in zip(predictions, validation):
        assert set(prediction.scores) == {"neg", "pos"}
        assert sum(prediction.scores.values()) == pytest.approx(1.0)
        assert prediction.confidence == pytest.approx(prediction.scores[prediction.output])
        assert prediction.confidence == max(prediction.scores.values())
        # scores are calibrated (softmax of logits / T, T fitted on validation); the loss is
        # training's, from the uncalibrated probabilities: p ~ score ** T
        temperature = json.loads((Path(result.model_dir) / "config.json").read_text())[
            "tuneloop_temperature"]
        uncalibrated = {label: score ** temperature for label, score in prediction.scores.items()}
        target_probability = uncalibrated[example.target] / sum(uncalibrated.values())
        assert prediction.extra["loss"] == pytest.approx(-math.log(target_probability), rel=1e-6)
        assert prediction.embedding is not None and prediction.embedding.ndim == 1
    assert predictions[-1].extra == {}  # no target, no loss


def test_regularizer_configure_prepare_penalty_and_callbacks_are_used(trained_classifier):
    _, _, result, _, regularizer, _ = trained_classifier
    assert regularizer.calls["configure"] == 1
    assert regularizer.configured_args["learning_rate"] == 5e-3
    assert regularizer.train_begin_args.max_grad_norm == 0.5  # configure's edit reached training
    assert regularizer.calls["prepare"] == 1
    assert regularizer.prepared_model.config.id2label == {0: "neg", 1: "pos"}
    assert regularizer.calls["penalty"] == result.global_step  # once per training step
    assert regularizer.calls["on_train_begin"] == 1
    assert regularizer.calls["on_step_end"] == result.global_step


def test_training_figures_are_streamed_to_the_context(trained_classifier):
    _, _, result, evaluations, _, logs = trained_classifier
    assert logs[0][0] == 1 and "loss" in logs[0][1]  # logging_first_step
    streamed = [(step, figures["eval_f1"]) for step, figures in logs if "eval_f1" in figures]
    assert streamed == [(entry["step"], entry["eval_f1"]) for entry in evaluations]


def test_weights_and_penalties_shape_the_training_loss_only(tmp_path):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    from tuneloop.plugins.trainers import common

    class ConstantPenalty(Regularizer):
        name = "constant"

        def penalty(self, model):
            return torch.tensor(0.25)

    torch.manual_seed(0)
    # no dropout: every forward pass gives the same logits, in training mode too
    model = BertForSequenceClassification(BertConfig(
        vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=2, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0))
    class CrossEntropy(TaskRecipe):
        position_losses = staticmethod(classification.cross_entropy_per_example)

    trainer = common.WeightedLossTrainer(
        model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none"),
        recipe=CrossEntropy(), regularizers=[ConstantPenalty()])
    batch = {"input_ids": torch.tensor([[1, 5, 6, 2], [1, 7, 8, 2]]),
             "attention_mask": torch.ones(2, 4, dtype=torch.long),
             "labels": torch.tensor([0, 1]), "example_index": torch.tensor([0, 1])}

    with torch.no_grad():
        per_example = torch.nn.functional.cross_entropy(
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
            batch["labels"], reduction="none")

        def loss(weights, training):
            model.train(training)
            return trainer.compute_loss(model, dict(batch, weight=torch.tensor(weights))).item()

        assert loss([1.0, 1.0], True) == pytest.approx(per_example.mean().item() + 0.25)
        assert loss([2.0, 0.0], True) == pytest.approx(per_example[0].item() + 0.25)
        assert loss([0.0, 1.0], True) == pytest.approx(per_example[1].item() / 2 + 0.25)
        assert loss([2.0, 0.0], False) == pytest.approx(per_example.mean().item())  # evaluation


def test_a_crashed_run_resumes_from_its_last_checkpoint(sentiment, tmp_path):
    from transformers import TrainerCallback

    base, train, validation = sentiment
    started_at: list[int] = []

    class CrashAtStep3(Regularizer):
        name = "crash"

        def callbacks(self):
            class Crash(TrainerCallback):
                def on_step_end(self, args, state, control, **kwargs):
                    if state.global_step == 3:
                        raise RuntimeError("power cut")

            return [Crash()]

    class RecordStart(Regularizer):
        name = "record_start"

        def callbacks(self):
            class Start(TrainerCallback):
                def on_train_begin(self, args, state, control, **kwargs):
                    started_at.append(state.global_step)

            return [Start()]

    context = cycle_context(tmp_path, task="classification", start_model=base,
                            labels=["neg", "pos"], metrics=[Accuracy()],
                            training={"epochs": 1, "batch_size": 8, "eval_every": 2,
                                      "select_metric": "accuracy"})
    trainer = classification.SequenceClassificationTrainer()
    splits = {"train": train, "validation": validation}
    with pytest.raises(RuntimeError, match="power cut"):
        trainer.train(context, splits, [CrashAtStep3()])
    assert (tmp_path / "checkpoints" / "checkpoint-2").is_dir()

    result = trainer.train(context, splits, [RecordStart()])
    assert started_at == [2]
    assert result.global_step == len(train) // 8  # one epoch
    assert not (tmp_path / "checkpoints").exists()


def test_a_start_model_keeps_its_head_only_for_the_same_labels(sentiment, tmp_path):
    base, _, _ = sentiment
    context = cycle_context(tmp_path, task="classification", start_model=base,
                            labels=["neg", "pos"])
    first, tokenizer = classification.ClassificationRecipe(context).load(base)
    first.save_pretrained(tmp_path / "trained")
    tokenizer.save_pretrained(tmp_path / "trained")
    trained_head = first.classifier.weight.detach().clone()

    reordered = classification.ClassificationRecipe(
        cycle_context(tmp_path, task="classification", start_model=base, labels=["pos", "neg"]))
    model, _ = reordered.load(str(tmp_path / "trained"))
    assert reordered.label_names == ["neg", "pos"]  # the trained head's order
    assert model.classifier.weight.detach().equal(trained_head)

    relabelled = classification.ClassificationRecipe(
        cycle_context(tmp_path, task="classification", start_model=base, labels=["neg", "odd"]))
    model, _ = relabelled.load(str(tmp_path / "trained"))
    assert model.config.id2label == {0: "neg", 1: "odd"}
    assert not model.classifier.weight.detach().equal(trained_head)  # fresh rows, new meaning


def test_a_label_outside_the_label_set_is_a_data_error(sentiment, tmp_path):
    base, train, validation = sentiment
    context = cycle_context(tmp_path, task="classification", start_model=base,
                            labels=["neg", "pos"])
    with pytest.raises(DataError, match='label "meh"'):
        classification.SequenceClassificationTrainer().train(
            context, {"train": train + [Example("the plot", "meh")], "validation": validation}, [])


def test_selecting_on_a_figure_no_metric_gives_is_an_error(sentiment, tmp_path):
    base, train, validation = sentiment
    context = cycle_context(tmp_path, task="classification", start_model=base,
                            labels=["neg", "pos"], metrics=[Accuracy()],
                            training={"epochs": 1, "batch_size": 16, "select_metric": "f1"})
    with pytest.raises(TuneloopError, match='"f1" is not a validation figure.*accuracy'):
        classification.SequenceClassificationTrainer().train(
            context, {"train": train, "validation": validation}, [])


# --------------------------------------------------------------------------------------------------
# Causal LM
# --------------------------------------------------------------------------------------------------


def test_only_completion_tokens_are_labelled():
    tokenizer = tiny_tokenizer(["say cat red", "say the owl"], style="gpt2")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    ids = {word: tokenizer.convert_tokens_to_ids(word)
           for word in ["say", "cat", "red", "the", "owl"]}
    short = causal_lm.encode_prompt_completion(tokenizer, "say cat", "red", max_length=16)
    long = causal_lm.encode_prompt_completion(tokenizer, "say the owl", "cat red", max_length=16)
    batch = causal_lm.CompletionCollator(pad)([short, long])

    assert batch["input_ids"].tolist() == [
        [ids["say"], ids["cat"], ids["red"], eos, pad, pad],
        [ids["say"], ids["the"], ids["owl"], ids["cat"], ids["red"], eos]]
    assert batch["labels"].tolist() == [
        [-100, -100, ids["red"], eos, -100, -100],
        [-100, -100, -100, ids["cat"], ids["red"], eos]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]


def test_truncation_cuts_the_prompt_before_the_completion():
    tokenizer = tiny_tokenizer(["a b c d e f g h"], style="gpt2")
    eos = tokenizer.eos_token_id
    tokens = {word: tokenizer.convert_tokens_to_ids(word) for word in "abcdefgh"}

    encoded = causal_lm.encode_prompt_completion(tokenizer, "a b c d e", "f g", max_length=5)
    assert encoded["input_ids"] == [tokens["d"], tokens["e"], tokens["f"], tokens["g"], eos]
    assert encoded["labels"] == [-100, -100, tokens["f"], tokens["g"], eos]

    encoded = causal_lm.encode_prompt_completion(tokenizer, "a b", "c d e f g h", max_length=4)
    assert encoded["input_ids"] == [tokens["b"], tokens["c"], tokens["d"], tokens["e"]]
    assert encoded["labels"] == [-100, tokens["c"], tokens["d"], tokens["e"]]


ANIMALS = ["cat", "dog", "cow", "owl", "fox", "bee"]
COLOURS = ["red", "blue", "green"]


@pytest.fixture(scope="module")
def trained_lm(tmp_path_factory):
    train = [Example(f"say {a} {c}", f"{a} {c}") for a in ANIMALS for c in COLOURS]
    validation = [Example(f"say {a} {c}", f"{a} {c}")
                  for a, c in [("cat", "red"), ("owl", "blue"), ("bee", "green")]]
    base = tiny_gpt2(tmp_path_factory.mktemp("gpt2"), [e.input for e in train])
    context = cycle_context(tmp_path_factory.mktemp("run"), task="causal-lm", start_model=base,
                            training={"epochs": 8, "learning_rate": 3e-3, "batch_size": 6,
                                      "eval_every": 6, "max_new_tokens": 4})
    trainer = causal_lm.CausalLMTrainer()
    result = trainer.train(context, {"train": train, "validation": validation}, [])
    return trainer, context, result, validation


def test_causal_lm_validation_loss_decreases(trained_lm):
    _, _, result, _ = trained_lm
    losses = [(entry["step"], entry["eval_loss"]) for entry in result.history
              if "eval_loss" in entry]
    assert [step for step, _ in losses] == [6, 12, 18, 24]  # eval_every: 6 steps
    assert losses[-1][1] < losses[0][1]
    assert result.best_metric == min(loss for _, loss in losses)


def test_causal_lm_generates_text_and_scores_the_reference(trained_lm):
    trainer, context, result, validation = trained_lm
    unlabelled = Example("say dog red")
    predictions = trainer.predict(result.model_dir, validation + [unlabelled], context)

    assert [p.example_id for p in predictions] == [e.id for e in validation + [unlabelled]]
    for prediction in predictions:
        assert isinstance(prediction.output, str) and prediction.output == prediction.output.strip()
        assert 0 < prediction.confidence <= 1
    for prediction, example in zip(predictions, validation):
        completion_tokens = len(example.target.split()) + 1  # and eos
        assert prediction.extra["tokens"] == completion_tokens
        assert prediction.extra["nll"] > 0
    assert predictions[-1].extra == {}

    # the perplexity of what predict measured is exp(validation loss) of the same model
    perplexity = Perplexity().compute(predictions[:-1], validation)["perplexity"]
    assert perplexity == pytest.approx(math.exp(result.best_metric), rel=1e-4)


def test_causal_lm_selects_on_a_generation_metric_only_when_it_generates_while_training(tmp_path):
    # tests/test_generation.py selects on rougeL with generation_eval_samples set
    context = cycle_context(tmp_path, task="causal-lm", start_model=str(tmp_path / "unused"),
                            training={"select_metric": "exact_match"})
    with pytest.raises(ConfigError, match="set training.trainer.generation_eval_samples"):
        causal_lm.CausalLMTrainer().train(context, {"train": [Example("a", "b")]}, [])


# --------------------------------------------------------------------------------------------------
# Multi-label classification and class weights
# --------------------------------------------------------------------------------------------------


def topic_examples(count: int, seed: int) -> list[Example]:
    """Inputs naming any of three topics; the target lists every topic named (multi-label)."""
    import random

    topics = {"price": ["cost", "price"], "delivery": ["parcel", "courier"],
              "quality": ["broken", "sturdy"]}
    rng = random.Random(seed)
    examples = []
    for number in range(count):
        chosen = [topic for topic in topics if rng.random() < 0.45] or ["price"]
        words = [rng.choice(topics[topic]) for topic in chosen] + rng.sample(FILLER_WORDS, 2)
        rng.shuffle(words)
        examples.append(Example(" ".join(words), "|".join(reversed(chosen))))
    return examples


FILLER_WORDS = ["the", "movie", "was", "really", "quite", "plot", "acting"]


def test_multi_label_classifier_learns_every_label_of_an_input(tmp_path):
    train, validation = topic_examples(96, seed=1), topic_examples(24, seed=2)
    base = tiny_bert(tmp_path / "bert", [e.input for e in train + validation])
    labels = sorted({e.target for e in train + validation})  # combinations, as the cycle gives
    context = cycle_context(tmp_path / "run", task="classification", start_model=base,
                            labels=labels, metrics=[Accuracy()],
                            training={"epochs": 20, "learning_rate": 3e-3, "batch_size": 8,
                                      "warmup_ratio": 0.1, "eval_every": 48,
                                      "select_metric": "accuracy", "tensorboard": False})
    options = classification.ClassificationOptions(multi_label=True, label_separator="|")
    trainer = classification.SequenceClassificationTrainer(options)
    no_dropout = Dropout(Dropout.Options(p=0.0))
    result = trainer.train(context, {"train": train, "validation": validation}, [no_dropout])
    # accuracy on multi-label is the exact set (targets list topics in any order): the most
    # common set is right for under half the inputs
    first = next(entry for entry in result.history if "eval_accuracy" in entry)
    assert first["eval_accuracy"] < 0.5
    assert result.best_metric >= 0.75

    predictions = trainer.predict(result.model_dir, validation, context)
    recipe = classification.ClassificationRecipe(context, options)
    assert recipe.label_names == ["delivery", "price", "quality"]
    right = sum(p.output == recipe.canonical(e.target) for p, e in zip(predictions, validation))
    assert right / len(validation) == pytest.approx(result.best_metric)
    for prediction in predictions:
        assert set(prediction.scores) == {"delivery", "price", "quality"}
        above = [label for label in recipe.label_names if prediction.scores[label] >= 0.5]
        assert prediction.output == "|".join(above or [max(prediction.scores,
                                                          key=prediction.scores.get)])
        assert prediction.confidence == pytest.approx(
            min(max(p, 1 - p) for p in prediction.scores.values()))


def test_balanced_class_weights_count_every_label_equally(tmp_path):
    import torch

    examples = [Example(f"text {n}", "rare" if n < 2 else "common") for n in range(10)]
    context = cycle_context(tmp_path, task="classification", start_model="unused",
                            labels=["common", "rare"])
    recipe = classification.ClassificationRecipe(
        context, classification.ClassificationOptions(class_weights="balanced"))
    recipe.fit_class_weights(examples)
    assert recipe.class_weights == {"common": 10 / (2 * 8), "rare": 10 / (2 * 2)}

    class Model(torch.nn.Module):
        training = True

        def forward(self, **inputs):
            return type("Out", (), {"logits": torch.tensor([[2.0, 0.0], [2.0, 0.0]])})()

    model = Model()
    losses, _, _ = recipe.losses(model, {"labels": torch.tensor([0, 1])}, 0.0)
    plain = torch.nn.functional.cross_entropy(torch.tensor([[2.0, 0.0], [2.0, 0.0]]),
                                              torch.tensor([0, 1]), reduction="none")
    assert losses.tolist() == pytest.approx((plain * torch.tensor([0.625, 2.5])).tolist())
    model.training = False  # validation losses stay unweighted
    losses, _, _ = recipe.losses(model, {"labels": torch.tensor([0, 1])}, 0.0)
    assert losses.tolist() == pytest.approx(plain.tolist())

    recipe = classification.ClassificationRecipe(
        context, classification.ClassificationOptions(class_weights={"oops": 2.0}))
    with pytest.raises(TuneloopError, match="oops not in the label set"):
        recipe.fit_class_weights(examples)


def test_multi_label_balanced_weights_weigh_positives_by_their_rarity(tmp_path):
    examples = [Example("a", "x|y"), Example("b", "x"), Example("c", "x"), Example("d", "x")]
    context = cycle_context(tmp_path, task="classification", start_model="unused",
                            labels=["x", "x|y"])
    recipe = classification.ClassificationRecipe(context, classification.ClassificationOptions(
        multi_label=True, label_separator="|", class_weights="balanced"))
    recipe.fit_class_weights(examples)
    assert recipe.label_names == ["x", "y"]
    assert recipe.class_weights == {"x": 0.0, "y": 3.0}  # negatives over positives


# --------------------------------------------------------------------------------------------------
# Chat conversations
# --------------------------------------------------------------------------------------------------

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} end {% endfor %}"
                 "{% if add_generation_prompt %}assistant : {% endif %}")


def chat_tokenizer_model(path):
    import json as json_module

    words = ["user", "assistant", "system", ":", "end", "hi", "hello", "colour", "red", "blue",
             "sky", "what", "is", "the", "be", "brief"]
    model_dir = tiny_gpt2(path, [" ".join(words)])
    config_path = path / "tokenizer_config.json"
    config = json_module.loads(config_path.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config_path.write_text(json_module.dumps(config))
    return model_dir


def conversation(*turns: tuple[str, str]) -> str:
    import json as json_module

    return json_module.dumps([{"role": role, "content": content} for role, content in turns])


def test_chat_examples_are_labelled_on_the_assistant_turns_only(tmp_path):
    model_dir = chat_tokenizer_model(tmp_path / "gpt2")
    _, tokenizer = causal_lm.load_causal_lm(model_dir)
    example = Example(conversation(("system", "be brief"), ("user", "hi"),
                                   ("assistant", "hello"), ("user", "what colour is the sky")),
                      "blue")
    context = cycle_context(tmp_path, task="causal-lm", start_model=model_dir)
    recipe = causal_lm.CausalLMRecipe(context)
    assert recipe.is_chat(example) and not recipe.is_chat(Example("[not json", "x"))
    encoded = recipe.encode(example, tokenizer)

    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    trained = [token for token, label in zip(tokens, encoded["labels"]) if label != -100]
    assert trained == ["hello", "end", "blue", "end"]  # both assistant turns, with end-of-turn
    assert tokens[:3] == ["system", ":", "be"]

    # generation starts after the conversation and the assistant header, without the answer
    prompt = tokenizer.convert_ids_to_tokens(recipe.prompt_ids(example, tokenizer))
    assert prompt[-4:] == ["sky", "end", "assistant", ":"]


def test_a_template_that_does_not_render_turn_by_turn_is_refused(tmp_path):
    import json as json_module

    model_dir = tiny_gpt2(tmp_path / "gpt2", ["user assistant : end hi hello"])
    config_path = tmp_path / "gpt2" / "tokenizer_config.json"
    config = json_module.loads(config_path.read_text())
    config["chat_template"] = ("{{ messages | length }} "
                               "{% for m in messages %}{{ m['content'] }} {% endfor %}")
    config_path.write_text(json_module.dumps(config))
    _, tokenizer = causal_lm.load_causal_lm(model_dir)
    with pytest.raises(TuneloopError, match="turn by turn"):
        causal_lm.encode_chat(tokenizer, [{"role": "user", "content": "hi"},
                                          {"role": "assistant", "content": "hello"}], 32)


def test_sft_on_chat_examples_learns_the_answers(tmp_path):
    model_dir = chat_tokenizer_model(tmp_path / "gpt2")
    train = [Example(conversation(("user", f"{word} colour")), answer)
             for word, answer in [("sky", "blue"), ("hi", "red")] for _ in range(12)]
    context = cycle_context(tmp_path / "run", task="causal-lm", start_model=model_dir,
                            training={"epochs": 12, "learning_rate": 1e-2, "batch_size": 6,
                                      "max_new_tokens": 2, "tensorboard": False})
    trainer = causal_lm.CausalLMTrainer()
    result = trainer.train(context, {"train": train, "validation": train[:2] + train[-2:]}, [])
    predictions = trainer.predict(result.model_dir, [train[0], train[-1]], context)
    assert [prediction.output.split()[0] for prediction in predictions] == ["blue", "red"]


def test_supervised_trainers_leave_out_answers_an_expert_marked_bad():
    from tuneloop.plugins.trainers.common import supervised_examples

    good = Example(input="q", target="right", desirable=True)
    plain = Example(input="q2", target="fine")
    bad = Example(input="q", target="wrong", desirable=False)
    unlabeled = Example(input="q3")
    assert supervised_examples([good, plain, bad, unlabeled]) == [good, plain]
