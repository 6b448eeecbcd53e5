"""The built-in regularizers: what each changes, and the options each refuses."""

from __future__ import annotations

import pydantic
import pytest

from tuneloop import Example, Regularizer, TuneloopError
from tuneloop.plugins import regularizers
from tuneloop.registries import Registry


def test_weight_decay_sets_the_trainer_argument():
    args = {"learning_rate": 1e-4}
    regularizers.WeightDecay(regularizers.WeightDecay.Options(value=0.05)).configure(args)
    assert args == {"learning_rate": 1e-4, "weight_decay": 0.05}
    default = {}
    regularizers.WeightDecay().configure(default)
    assert default == {"weight_decay": 0.01}


def test_weight_decay_refuses_a_negative_value():
    with pytest.raises(pydantic.ValidationError):
        regularizers.WeightDecay.Options(value=-0.1)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_dropout_refuses_a_probability_outside_zero_to_one(p):
    with pytest.raises(pydantic.ValidationError):
        regularizers.Dropout.Options(p=p)


def dropout_probabilities(model):
    import torch

    return {module.p for module in model.modules() if isinstance(module, torch.nn.Dropout)}


def test_dropout_sets_every_layer_and_the_config_of_a_bert_classifier():
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(BertConfig(
        vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.05))
    assert dropout_probabilities(model) == {0.1, 0.05}

    prepared = regularizers.Dropout(regularizers.Dropout.Options(p=0.3)).prepare(model)
    assert prepared is model
    assert dropout_probabilities(model) == {0.3}
    assert model.config.hidden_dropout_prob == 0.3
    assert model.config.attention_probs_dropout_prob == 0.3
    assert model.config.classifier_dropout is None  # None means "the hidden dropout": kept


def test_dropout_sets_every_layer_and_the_config_of_a_gpt2_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=16, n_embd=16, n_layer=1,
                                       n_head=2))
    regularizers.Dropout(regularizers.Dropout.Options(p=0.0)).prepare(model)
    assert dropout_probabilities(model) == {0.0}
    assert (model.config.resid_pdrop, model.config.embd_pdrop, model.config.attn_pdrop) == (0, 0, 0)


def test_register_regularizers_gives_valid_regularizers():
    registry = Registry("regularizers", Regularizer)
    regularizers.register_regularizers(
        register=lambda component: registry.add(component, "builtin"))
    assert registry.names() == ["dropout", "early_stopping", "ewc", "gradient_clipping", "l2_sp",
                                "label_smoothing", "replay", "weight_decay"]


def test_the_builtins_and_an_inline_plugin_reach_the_registry_and_the_inline_one_leaves():
    from tuneloop import hookimpl, registries
    from tuneloop.testing import register_plugin

    class Freeze(Regularizer):
        name = "freeze_embeddings"

    class InlinePlugin:
        @hookimpl
        def register_regularizers(self, register):
            register(Freeze)

    with pytest.raises(RuntimeError, match="test body failed"):
        with register_plugin(InlinePlugin(), name="inline") as name:
            assert name == "inline"
            found = registries.build().regularizers
            assert {"weight_decay", "dropout", "freeze_embeddings"} <= set(found.names())
            assert found.entry("freeze_embeddings").plugin == "inline"
            assert found.entry("dropout").plugin == "tuneloop.plugins.regularizers"
            raise RuntimeError("test body failed")
    assert "freeze_embeddings" not in registries.build().regularizers


# --------------------------------------------------------------------------------------------------
# Trainer arguments: label smoothing, gradient clipping
# --------------------------------------------------------------------------------------------------


def test_label_smoothing_and_gradient_clipping_set_their_trainer_arguments():
    from tuneloop import registries

    found = registries.build().regularizers
    args: dict = {}
    found.get("label_smoothing")(regularizers.LabelSmoothing.Options(value=0.2)).configure(args)
    found.get("gradient_clipping")(regularizers.GradientClipping.Options(max_norm=0.5)) \
        .configure(args)
    assert args == {"label_smoothing_factor": 0.2, "max_grad_norm": 0.5}
    with pytest.raises(pydantic.ValidationError):
        regularizers.LabelSmoothing.Options(value=1.0)
    with pytest.raises(pydantic.ValidationError):
        regularizers.GradientClipping.Options(max_norm=0)


def tiny_classifier(dropout: float = 0.0):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=2, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout))


def test_the_training_loss_uses_the_label_smoothing_argument(tmp_path):
    import torch
    from transformers import TrainingArguments

    from tuneloop.plugins.trainers import classification, common
    from tuneloop.plugins.trainers.recipe import TaskRecipe

    class CrossEntropy(TaskRecipe):
        position_losses = staticmethod(classification.cross_entropy_per_example)

    model = tiny_classifier()
    args = {"output_dir": str(tmp_path), "report_to": "none"}
    regularizers.LabelSmoothing(regularizers.LabelSmoothing.Options(value=0.3)).configure(args)
    trainer = common.WeightedLossTrainer(model=model, args=TrainingArguments(**args),
                                         recipe=CrossEntropy())
    batch = {"input_ids": torch.tensor([[1, 5, 6, 2]]), "attention_mask": torch.ones(1, 4).long(),
             "labels": torch.tensor([1])}
    with torch.no_grad():
        model.classifier.weight *= 200  # confident logits, where smoothing shows
        logits = model(input_ids=batch["input_ids"]).logits
        model.train()
        smoothed = trainer.compute_loss(model, dict(batch)).item()
    assert smoothed == pytest.approx(torch.nn.functional.cross_entropy(
        logits, batch["labels"], label_smoothing=0.3).item(), rel=1e-5)
    assert smoothed != pytest.approx(torch.nn.functional.cross_entropy(
        logits, batch["labels"]).item(), rel=0.05)


# --------------------------------------------------------------------------------------------------
# Penalties: L2-SP and EWC
# --------------------------------------------------------------------------------------------------


def test_l2_sp_pulls_the_body_towards_its_pretrained_weights_and_leaves_the_head():
    import torch

    model = tiny_classifier()
    l2_sp = regularizers.L2SP(regularizers.L2SP.Options(strength=0.5))
    assert l2_sp.prepare(model) is model
    assert l2_sp.penalty(model).item() == 0.0  # at the pretrained weights
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.weight[0, :4] += 0.1  # 4 weights moved
        model.classifier.weight += 1.0  # the head is not anchored
    assert l2_sp.penalty(model).item() == pytest.approx(0.5 / 2 * 4 * 0.1 ** 2, rel=1e-4)
    model.bert.encoder.layer[0].requires_grad_(False)  # frozen weights are not penalised
    assert l2_sp.penalty(model) is None or l2_sp.penalty(model).item() == 0.0


def test_ewc_weighs_each_weight_by_its_fisher_information():
    import torch

    model = tiny_classifier()
    examples = [Example("a b", "neg"), Example("b c", "pos"), Example("c", "neg")]
    batches = {"a b": [1, 5, 6], "b c": [1, 6, 7], "c": [1, 7]}

    def loss(model, chosen):
        (example,) = chosen
        output = model(input_ids=torch.tensor([batches[example.input]]))
        return torch.nn.functional.cross_entropy(
            output.logits, torch.tensor([0 if example.target == "neg" else 1]))

    parameters = regularizers.pretrained_parameters(model)
    fisher = regularizers.fisher_information(model, parameters, examples, loss)
    # by hand: the mean over examples of each squared gradient
    expected = [torch.zeros_like(parameter) for parameter in parameters]
    model.eval()
    for example in examples:
        model.zero_grad()
        loss(model, [example]).backward()
        for total, parameter in zip(expected, parameters):
            total += parameter.grad.pow(2) / len(examples)
    for computed, by_hand in zip(fisher, expected):
        assert torch.allclose(computed, by_hand, atol=1e-10)
    assert any(value.sum() > 0 for value in fisher)

    ewc = regularizers.EWC(regularizers.EWC.Options(strength=2.0))
    ewc.penalty_term.anchor(parameters, fisher)
    assert ewc.penalty(model).item() == 0.0
    weight = model.bert.encoder.layer[0].output.dense.weight
    index = next(number for number, parameter in enumerate(parameters) if parameter is weight)
    with torch.no_grad():
        weight[0, 0] += 0.5
    assert ewc.penalty(model).item() == pytest.approx(
        2.0 / 2 * fisher[index][0, 0].item() * 0.25, rel=1e-4)


# --------------------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------------------


def test_early_stopping_stops_after_patience_evaluations_without_improvement(tmp_path):
    from tuneloop.plugins.metrics import Accuracy
    from tuneloop.plugins.trainers import classification
    from tuneloop.plugins.trainers.common import TrainingSession
    from tuneloop.testing import cycle_context, tiny_bert
    from training_data import sentiment_examples, sentiment_texts

    base = tiny_bert(tmp_path / "bert", sentiment_texts())
    context = cycle_context(tmp_path / "run", task="classification", start_model=base,
                            labels=["neg", "pos"], metrics=[Accuracy()],
                            training={"epochs": 20, "learning_rate": 1e-9, "batch_size": 8,
                                      "eval_every": 2, "select_metric": "accuracy",
                                      "tensorboard": False})
    stopping = regularizers.EarlyStopping(regularizers.EarlyStopping.Options(patience=2))
    result = classification.SequenceClassificationTrainer().train(
        context, {"train": sentiment_examples(32, 1), "validation": sentiment_examples(8, 2)},
        [stopping])
    # the first evaluation sets the best; two more without improvement stop training
    assert result.global_step == 6
    assert stopping.report == {"metric": "accuracy", "patience": 2, "stopped_at_step": 6,
                               "best": stopping.report["best"]}
    session = TrainingSession(context, None, None, [], [])
    loss_stopping = regularizers.EarlyStopping(regularizers.EarlyStopping.Options(metric="loss"))
    loss_stopping.setup(session)
    assert loss_stopping.greater_is_better is False


def test_a_resumed_run_counts_the_evaluations_it_already_made():
    from types import SimpleNamespace

    options = regularizers.EarlyStopping.Options(metric="f1", patience=2)
    callback = regularizers.early_stopping_callback(options, True, {})
    args = SimpleNamespace(eval_strategy="steps", metric_for_best_model="f1")
    history = [{"eval_f1": 0.8, "step": 2}, {"loss": 0.3, "step": 3}, {"eval_f1": 0.7, "step": 4}]
    callback.on_train_begin(args, SimpleNamespace(log_history=history), None)
    control = SimpleNamespace(should_training_stop=False)
    callback.on_evaluate(args, SimpleNamespace(global_step=6), control, metrics={"eval_f1": 0.79})
    assert control.should_training_stop  # the evaluation at step 4 already counted
    with pytest.raises(TuneloopError, match='"f1" is not a validation figure'):
        callback.on_evaluate(args, SimpleNamespace(global_step=8), control,
                             metrics={"eval_loss": 0.2})


# --------------------------------------------------------------------------------------------------
# Several regularizers in one cycle, replay and EWC across cycles
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_cycles(tmp_path_factory):
    """Cycle 1 on the first 64 examples; cycle 2 on 64 others with every regularizer at once."""
    import json

    import yaml

    from projects import write_jsonl
    from tuneloop.config import load_config
    from tuneloop.cycle import run_cycle
    from tuneloop.store import Store
    from tuneloop.testing import tiny_bert
    from training_data import numbered_vocabulary, sentiment_project

    directory = tmp_path_factory.mktemp("project")
    base = tiny_bert(directory / "bert", numbered_vocabulary(200))
    path = sentiment_project(directory, base, count=128, epochs=2)
    rows = [json.loads(line) for line in (directory / "data.jsonl").read_text().splitlines()]
    write_jsonl(directory / "data.jsonl", rows[:64])
    first = run_cycle(load_config(path), quiet=True)

    write_jsonl(directory / "data.jsonl", rows[64:])
    write_jsonl(directory / "general.jsonl", rows[:64])  # the first cycle's data, as a file
    config = yaml.safe_load(path.read_text())
    config["training"]["regularizers"] = [
        {"name": "weight_decay", "value": 0.02}, {"name": "dropout", "p": 0.05},
        {"name": "label_smoothing", "value": 0.1}, {"name": "gradient_clipping", "max_norm": 2.0},
        {"name": "early_stopping", "patience": 5}, {"name": "l2_sp", "strength": 0.01},
        {"name": "ewc", "strength": 10, "samples": 16}, {"name": "replay", "share": 0.25}]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    second = run_cycle(load_config(path), quiet=True)
    with Store(load_config(path).database_path) as store:
        cycle = store.cycle(second.cycle_id)
        splits = {split: {row["input"] for row in store.examples(first.cycle_id, split)}
                  for split in ("train", "validation", "test")}
        assignments = store.split_assignments()
    return {"first": first, "second": second, "cycle": cycle, "splits": splits,
            "assignments": assignments, "path": path, "directory": directory, "base": base}


def test_every_regularizer_works_in_one_cycle_and_the_cycle_records_them(two_cycles):
    import json

    assert two_cycles["second"].status == "done"
    cycle = two_cycles["cycle"]
    components = json.loads(cycle["components"])["regularizers"]
    assert [entry["name"] for entry in components] == [
        "weight_decay", "dropout", "label_smoothing", "gradient_clipping", "early_stopping",
        "l2_sp", "ewc", "replay"]
    assert components[0]["options"] == {"value": 0.02}
    training = json.loads(cycle["stats"])["training"]
    assert training["arguments"]["weight_decay"] == 0.02
    assert training["arguments"]["label_smoothing_factor"] == 0.1
    assert training["arguments"]["max_grad_norm"] == 2.0
    assert set(training["regularizers"]) == {"early_stopping", "ewc", "replay"}
    assert 0 <= training["padding_fraction"] < 0.5


def test_ewc_uses_the_previous_cycles_data(two_cycles):
    import json

    report = json.loads(two_cycles["cycle"]["stats"])["training"]["regularizers"]["ewc"]
    assert report == {"active": True, "previous_cycle": two_cycles["first"].cycle_id,
                      "fisher_examples": 16}


def test_replay_mixes_in_the_configured_share_of_earlier_training_data(two_cycles):
    import json

    report = json.loads(two_cycles["cycle"]["stats"])["training"]["regularizers"]["replay"]
    training = json.loads(two_cycles["cycle"]["stats"])["training"]
    assert report["from"] == "earlier cycles" and report["refused_held_out"] == 0
    assert report["pool"] == len(two_cycles["splits"]["train"])
    own = training["train_examples"] - report["added"]
    assert report["wanted"] == round(0.25 / 0.75 * own) and report["added"] == report["wanted"]


def test_replay_from_a_source_never_brings_in_held_out_inputs(two_cycles, tmp_path):
    from tuneloop.config import load_config
    from tuneloop.context import CycleContext
    from tuneloop.plugins.trainers.common import TrainingSession
    from tuneloop.store import Store

    config = load_config(two_cycles["path"])
    with Store(config.database_path) as store:
        context = CycleContext(cycle_id=99, config=config, store=store, run_dir=tmp_path,
                               start_model=two_cycles["base"], seed=1, labels=["neg", "pos"])
        session = TrainingSession(context, None, None, train=[Example("x", "pos")] * 30,
                                  validation=[])
        replay = regularizers.Replay(regularizers.Replay.Options(
            share=0.5, source={"type": "jsonl", "path": "general.jsonl",
                               "fields": {"input": "text", "target": "label"}}))
        replay.setup(session)
    added = session.train[30:]
    held_out = two_cycles["splits"]["validation"] | two_cycles["splits"]["test"]
    assert session.report["replay"]["refused_held_out"] == len(held_out)
    assert len(added) == min(30, 64 - len(held_out)) and not {e.input for e in added} & held_out
    assert all(example.provenance["kind"] == "replay" for example in added)


def test_ewc_is_off_when_training_starts_from_the_base_model(tmp_path):
    from tuneloop.plugins.trainers.common import TrainingSession
    from tuneloop.testing import cycle_context

    context = cycle_context(tmp_path, task="classification", start_model="base",
                            labels=["neg", "pos"])
    session = TrainingSession(context, None, None, [], [])
    ewc = regularizers.EWC()
    ewc.setup(session)
    model = object()
    assert ewc.prepare(model) is model and ewc.penalty(model) is None
    assert session.report["ewc"]["active"] is False
