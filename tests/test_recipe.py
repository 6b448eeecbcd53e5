"""The classification recipe: a step budget sized to the data with early stopping, a faster
head, mean pooling for sentence encoders, temperature calibration, and the thread setting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tuneloop import threads  # noqa: E402
from tuneloop.config import TrainingConfig  # noqa: E402
from tuneloop.errors import TuneloopError  # noqa: E402
from tuneloop.plugins.metrics import F1, Accuracy  # noqa: E402
from tuneloop.plugins.trainers import budget, pooling  # noqa: E402
from tuneloop.plugins.trainers.classification import (ClassificationOptions,  # noqa: E402
                                                      SequenceClassificationTrainer,
                                                      fit_temperature)
from tuneloop.plugins.trainers.recipe import with_learning_rates  # noqa: E402
from tuneloop.testing import cycle_context, tiny_bert  # noqa: E402
from training_data import sentiment_examples, sentiment_texts  # noqa: E402


# ---- the step budget -----------------------------------------------------------------------


def test_budget_gives_a_small_set_many_passes_and_a_large_one_few():
    assert budget.auto_steps(1_200, 16) == math.ceil(16_000 / 16)  # 13.3 passes
    assert budget.auto_steps(15_000, 16) == math.ceil(3 * 15_000 / 16)  # at least 3 passes
    assert budget.auto_steps(240, 16) == math.ceil(40 * 240 / 16)  # at most 40 passes
    assert budget.auto_steps(10, 16) == budget.MIN_STEPS
    assert budget.auto_steps(1_000_000, 16) == budget.MAX_STEPS  # the ceiling


def test_epochs_the_user_wrote_win_over_the_budget():
    assert budget.uses_budget("auto", TrainingConfig())
    assert not budget.uses_budget("auto", TrainingConfig(epochs=4))
    assert not budget.uses_budget("epochs", TrainingConfig())
    assert budget.uses_budget(300, TrainingConfig(epochs=4))


def test_budget_sets_max_steps_and_validates_over_it():
    args = {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 2,
            "eval_strategy": "epoch", "save_strategy": "epoch"}
    report = budget.configure(args, "auto", 16, TrainingConfig(), train_examples=1_600)
    assert args["max_steps"] == 500 == report["max_steps"]  # 10 passes of 1,600 / 32
    assert args["eval_strategy"] == args["save_strategy"] == "steps"
    assert args["eval_steps"] == args["save_steps"] == 32 == report["eval_steps"]
    kept = {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 1,
            "eval_strategy": "epoch"}
    assert budget.configure(kept, "auto", 16, TrainingConfig(epochs=2), 100) == {
        "budget": "epochs", "epochs": 2.0}
    assert "max_steps" not in kept and kept["eval_strategy"] == "epoch"


def test_options_refuse_a_budget_below_one_step():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="steps"):
        ClassificationOptions(steps=0)
    with pytest.raises(ValidationError):
        ClassificationOptions(head_learning_rate=-1.0)


def test_named_parameters_get_their_own_learning_rate_in_every_group():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    optimizer = torch.optim.AdamW([
        {"params": [model[0].weight, model[1].weight], "weight_decay": 0.01},
        {"params": [model[0].bias, model[1].bias], "weight_decay": 0.0}], lr=1e-4)
    with_learning_rates(optimizer, model, {"1.weight": 3e-3, "1.bias": 3e-3})
    rates = {(group["lr"], group["weight_decay"]): len(group["params"])
             for group in optimizer.param_groups}
    assert rates == {(1e-4, 0.01): 1, (3e-3, 0.01): 1, (1e-4, 0.0): 1, (3e-3, 0.0): 1}


# ---- training with the recipe on a tiny model -----------------------------------------------


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("budget")
    model = tiny_bert(folder / "bert", sentiment_texts())
    logs: list[dict] = []
    context = cycle_context(folder / "run", task="classification", start_model=model,
                            labels=["neg", "pos"], metrics=[Accuracy(), F1()],
                            training={"learning_rate": 5e-3, "batch_size": 8, "seed": 1},
                            log=lambda step, entry: logs.append({"step": step, **entry}))
    options = ClassificationOptions(steps=60, evaluations=6, patience=2)
    trainer = SequenceClassificationTrainer(options)
    splits = {"train": sentiment_examples(48, seed=1),
              "validation": sentiment_examples(16, seed=2)}
    result = trainer.train(context, splits, [])
    return trainer, context, result, logs, splits


def test_the_budget_trains_in_steps_validates_over_it_and_stops_early(budget_run):
    _, _, result, logs, _ = budget_run
    recipe = result.extra["recipe"]
    assert recipe["budget"] == "steps" and recipe["max_steps"] == 60
    assert recipe["eval_steps"] == 10 and result.extra["arguments"]["max_steps"] == 60
    evaluated = [entry["step"] for entry in logs if "eval_f1" in entry]
    assert evaluated[:2] == [10, 20]
    stopped = recipe["early_stopping"].get("stopped_at_step")
    # either patience ran out before the budget, or the budget ended training
    assert (stopped is not None and stopped < 60) or result.global_step == 60
    if stopped is not None:
        assert result.global_step == stopped == evaluated[-1]
    assert recipe["head_learning_rate"] == pytest.approx(0.005)  # 30 x 5e-3 capped, not below


def test_the_saved_model_is_calibrated_and_predicts_with_embeddings(budget_run):
    trainer, context, result, _, splits = budget_run
    config = json.loads((Path(result.model_dir) / "config.json").read_text())
    assert config["tuneloop_temperature"] == pytest.approx(result.extra["recipe"]["temperature"],
                                                           abs=1e-4)
    assert 0.25 <= config["tuneloop_temperature"] <= 20
    assert config["tuneloop_pooling"] == "cls"  # a plain encoder, not a sentence-transformer
    predictions = trainer.predict(result.model_dir, splits["validation"], context)
    assert all(p.embedding.shape == (32,) for p in predictions)


def test_temperature_fit_recovers_how_overconfident_logits_are():
    rng = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 5, generator=rng) * 2
    targets = torch.multinomial(torch.softmax(true_logits, dim=-1), 1, generator=rng).squeeze(1)
    overconfident = (true_logits * 3).numpy()  # the model's logits: three times too sharp
    assert fit_temperature(overconfident, targets.numpy()) == pytest.approx(3.0, rel=0.1)


# ---- mean pooling ------------------------------------------------------------------------------


def test_sentence_transformer_folders_are_mean_pooled(tmp_path):
    assert not pooling.sentence_transformers_mean(str(tmp_path))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}))
    assert pooling.sentence_transformers_mean(str(tmp_path))
    assert pooling.wanted("auto", str(tmp_path), object()) == "mean"
    assert pooling.wanted("cls", str(tmp_path), object()) == "cls"


def test_mean_pooling_ignores_padding_and_survives_saving(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tiny_bert(tmp_path / "bert", sentiment_texts())
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).eval()
    assert pooling.apply(model, "mean") == "mean"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = sentiment_examples(1, seed=3)[0].input
    alone = tokenizer([text], return_tensors="pt")
    padded = tokenizer([text, text + " " + text + " " + text], padding=True, return_tensors="pt")
    with torch.inference_mode():
        first = model(**alone).logits[0]
        second = model(**padded).logits[0]
        hidden = model.base_model(**alone).last_hidden_state.mean(dim=1)
        assert torch.allclose(model.base_model.pooler(hidden.unsqueeze(1)).squeeze(), hidden[0])
    assert torch.allclose(first, second, atol=1e-5)  # the padding of the batch changes nothing
    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(tmp_path / "saved")
    again = pooling.load_classifier(str(tmp_path / "saved")).eval()
    with torch.inference_mode():
        assert torch.allclose(again(**alone).logits[0], first, atol=1e-5)


# ---- threads -----------------------------------------------------------------------------------


def test_threads_come_from_the_environment_then_the_config_then_the_free_cores(monkeypatch):
    monkeypatch.setenv("TUNELOOP_THREADS", "3")
    assert threads.chosen_threads(2) == (3, "TUNELOOP_THREADS")
    monkeypatch.delenv("TUNELOOP_THREADS")
    assert threads.chosen_threads(2) == (2, "config")
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads, "busy_cores", lambda: 3)
    assert threads.chosen_threads()[0] == 1
    monkeypatch.setattr(threads, "busy_cores", lambda: 9)
    assert threads.chosen_threads()[0] == 1  # never below one
    monkeypatch.setattr(threads, "busy_cores", lambda: 0)
    assert threads.chosen_threads()[0] == 4
    previous = torch.get_num_threads()
    try:
        assert threads.configure(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_a_bad_thread_count_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("TUNELOOP_THREADS", "many")
    with pytest.raises(TuneloopError, match="TUNELOOP_THREADS='many'"):
        threads.chosen_threads()


def test_usable_cores_follow_the_affinity_mask():
    import os

    if hasattr(os, "sched_getaffinity"):
        assert 1 <= threads.usable_cores() <= len(os.sched_getaffinity(0))
