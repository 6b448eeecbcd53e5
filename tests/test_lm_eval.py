"""The lm_eval metric: lm-evaluation-harness tasks in-process on a tiny GPT-2, offline, and as a
forgetting guard in a cycle (the base model measured once, every cycle compared with it)."""

from __future__ import annotations

import json
import math

import pytest

from projects import causal_project, vocabulary_texts, write_jsonl
from tuneloop import TuneloopError, registries
from tuneloop.config import load_config
from tuneloop.cycle import run_cycle
from tuneloop.store import Store
from tuneloop.testing import cycle_context


def capitals() -> list[dict]:
    from tuneloop.plugins.lm_eval import SHIPPED_TASKS

    path = SHIPPED_TASKS / "tuneloop_capitals" / "capitals.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A tiny GPT-2 whose vocabulary covers the toy projects and the shipped task."""
    from tuneloop.testing import tiny_gpt2

    texts = vocabulary_texts() + [
        f"Question: What is the capital of {row['country']}?\nAnswer: " + " ".join(row["choices"])
        for row in capitals()]
    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"), texts)


def lm_eval_metric(**options):
    component = registries.build()["metrics"].get("lm_eval")
    return component(component.Options.model_validate(options))


def loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """log p(continuation | context), split into tokens as lm-eval splits them."""
    import torch

    context_ids = tokenizer(context)["input_ids"]
    whole = tokenizer(context + continuation)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0].float()
    log_probabilities = torch.log_softmax(logits, dim=-1)
    return sum(log_probabilities[len(context_ids) - 1 + offset, token].item()
               for offset, token in enumerate(whole[len(context_ids):]))


def test_the_shipped_task_on_a_tiny_gpt2_matches_a_hand_computed_accuracy(gpt2_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    metric = lm_eval_metric(tasks=["tuneloop_capitals"], limit=12, batch_size=4)
    assert metric.measures_model and metric.tasks == ("causal-lm",)
    context = cycle_context(tmp_path, task="causal-lm", start_model=gpt2_dir)
    figures = metric.measure(gpt2_dir, context)
    assert set(figures) == {f"lm_eval.tuneloop_capitals.{name}" for name in
                            ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr")}

    # the same decisions, computed without lm-eval: the likeliest choice (acc) and the likeliest
    # per character (acc_norm), for the first 12 questions
    model = AutoModelForCausalLM.from_pretrained(gpt2_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(gpt2_dir)
    right = right_normalised = 0
    rows = capitals()[:12]
    for row in rows:
        prompt = f"Question: What is the capital of {row['country']}?\nAnswer:"
        scores = [loglikelihood(model, tokenizer, prompt, " " + choice)
                  for choice in row["choices"]]
        normalised = [score / len(" " + choice) for score, choice in zip(scores, row["choices"])]
        right += scores.index(max(scores)) == row["answer"]
        right_normalised += normalised.index(max(normalised)) == row["answer"]
    assert figures["lm_eval.tuneloop_capitals.acc"] == pytest.approx(right / len(rows))
    assert figures["lm_eval.tuneloop_capitals.acc_norm"] == pytest.approx(
        right_normalised / len(rows))
    accuracy = right / len(rows)
    assert figures["lm_eval.tuneloop_capitals.acc_stderr"] == pytest.approx(
        math.sqrt(accuracy * (1 - accuracy) / (len(rows) - 1)))


def test_a_local_task_folder_with_json_data_relative_to_the_config(gpt2_dir, tmp_path):
    """A project's own task: ``include_path`` is relative to the config file; the YAML reads
    JSONL through lm-eval's ``dataset_path: json``."""
    folder = tmp_path / "tasks" / "colours"
    folder.mkdir(parents=True)
    data = write_jsonl(folder / "colours.jsonl", [
        {"prompt": f"item {n} colour is {colour} . answer :", "answer": colour}
        for n, colour in enumerate(["red", "blue", "green", "black", "red", "blue"])])
    (folder / "colours.yaml").write_text(
        "task: toy_colours\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "output_type: multiple_choice\n"
        "test_split: test\n"
        'doc_to_text: "{{prompt}}"\n'
        'doc_to_choice: ["red", "blue", "green", "black"]\n'
        'doc_to_target: "{{[\'red\', \'blue\', \'green\', \'black\'].index(answer)}}"\n'
        "metric_list:\n  - metric: acc\n", encoding="utf-8")
    config_path = causal_project(tmp_path, gpt2_dir)
    context = cycle_context(tmp_path / "run", task="causal-lm", start_model=gpt2_dir)
    context.config.config_path = config_path
    metric = lm_eval_metric(tasks=["toy_colours", "tuneloop_capitals"], include_path=["tasks"],
                            limit=4, bootstrap_iters=0)
    figures = metric.measure(gpt2_dir, context)
    assert set(figures) == {"lm_eval.toy_colours.acc", "lm_eval.tuneloop_capitals.acc",
                            "lm_eval.tuneloop_capitals.acc_norm"}  # no stderr without bootstrap
    assert all(0 <= value <= 1 for value in figures.values())


def test_an_unknown_task_or_folder_is_a_one_line_error(gpt2_dir, tmp_path):
    context = cycle_context(tmp_path, task="causal-lm", start_model=gpt2_dir)
    with pytest.raises(TuneloopError, match="no such folder"):
        lm_eval_metric(tasks=["tuneloop_capitals"], include_path=["missing"]).task_manager(context)


@pytest.mark.slow
def test_an_unknown_task_suggests_the_closest(gpt2_dir, tmp_path):
    """Reads lm-eval's whole registry (~5 s) before giving up."""
    context = cycle_context(tmp_path, task="causal-lm", start_model=gpt2_dir)
    with pytest.raises(TuneloopError, match='no task "tuneloop_capital" \\(did you mean '
                                            'tuneloop_capitals'):
        lm_eval_metric(tasks=["tuneloop_capital"]).task_manager(context)


def test_options_are_checked():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="tasks"):
        lm_eval_metric(tasks=[])
    with pytest.raises(ValidationError, match="limit"):
        lm_eval_metric(tasks=["x"], limit=0)


def test_the_config_refuses_lm_eval_for_classification(tmp_path):
    from projects import classification_project

    from tuneloop.errors import ConfigError

    path = classification_project(tmp_path, "unused", evaluation={
        "metrics": ["accuracy", {"name": "lm_eval", "tasks": ["tuneloop_capitals"]}]})
    with pytest.raises(ConfigError, match='metric "lm_eval" does not support task '
                                          "classification"):
        load_config(path)


def test_lm_eval_results_become_flat_figures():
    from tuneloop.plugins.lm_eval import figures

    results = {"results": {
        "gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.25,
                  "exact_match_stderr,strict-match": 0.05, "exact_match,flexible": 0.5,
                  "exact_match_stderr,flexible": "N/A"},
        "capitals": {"acc,none": 0.75, "acc_stderr,none": 0.1, "sample_len": 40}}}
    assert figures(results) == {
        "lm_eval.gsm8k.exact_match.strict-match": 0.25,
        "lm_eval.gsm8k.exact_match.strict-match_stderr": 0.05,
        "lm_eval.gsm8k.exact_match.flexible": 0.5,
        "lm_eval.capitals.acc": 0.75, "lm_eval.capitals.acc_stderr": 0.1}


# --------------------------------------------------------------------------------------------------
# In a cycle: a forgetting guard against the base model
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(gpt2_dir, tmp_path_factory):
    """Two causal-LM cycles with lm_eval and a rule against the base model."""
    directory = tmp_path_factory.mktemp("guarded")
    config = load_config(causal_project(
        directory, gpt2_dir,
        evaluation={"metrics": ["exact_match", "perplexity",
                                {"name": "lm_eval", "tasks": ["tuneloop_capitals"], "limit": 8,
                                 "batch_size": 8}]},
        promotion={"rules": [
            {"metric": "validation.loss", "at_least": "best", "lower_is_better": True},
            {"metric": "benchmark.lm_eval.tuneloop_capitals.acc", "at_least": "base",
             "tolerance": 0.5}]}))
    first = run_cycle(config, quiet=True)
    second = run_cycle(config, quiet=True)
    return config, first, second


def test_benchmark_figures_are_stored_under_their_own_split(guarded):
    config, first, second = guarded
    assert set(first.metrics) == {"validation", "test", "benchmark"}
    assert "lm_eval.tuneloop_capitals.acc" in first.metrics["benchmark"]
    with Store(config.database_path) as store:
        stored = store.final_metrics(first.cycle_id)
        assert stored["benchmark"] == first.metrics["benchmark"]
        assert "lm_eval.tuneloop_capitals.acc" not in stored["validation"]


def test_the_base_model_is_measured_once_per_project(guarded, gpt2_dir, tmp_path):
    config, first, second = guarded
    with Store(config.database_path) as store:
        rows = store.query("SELECT model, metric, name, value, created_at FROM base_metrics")
    assert {row["model"] for row in rows} == {gpt2_dir} and {row["metric"] for row in rows} == \
        {"lm_eval"}
    assert len(rows) == 4  # acc, acc_norm and their stderr: once, not once per cycle
    # the base model measured by hand gives the stored figure
    context = cycle_context(tmp_path, task="causal-lm", start_model=gpt2_dir)
    again = lm_eval_metric(tasks=["tuneloop_capitals"], limit=8, batch_size=8).measure(gpt2_dir,
                                                                                      context)
    stored = {row["name"]: row["value"] for row in rows}
    assert stored == pytest.approx(again)


def test_the_gate_compares_the_benchmark_with_the_base_model(guarded):
    config, first, second = guarded
    with Store(config.database_path) as store:
        base = {row["name"]: row["value"] for row in store.query(
            "SELECT name, value FROM base_metrics")}
    for result in (first, second):
        reason = next(reason for reason in result.reasons if "benchmark" in reason)
        value = result.metrics["benchmark"]["lm_eval.tuneloop_capitals.acc"]
        threshold = base["lm_eval.tuneloop_capitals.acc"]
        assert reason == (f"pass: benchmark.lm_eval.tuneloop_capitals.acc = {value:.4f} "
                          f"{'>=' if value >= threshold - 0.5 else '<'} {threshold:.4f}, "
                          f"the base model (tolerance 0.5)")
    # the causal LM's selection figure, the validation loss, is measured and gated on
    assert first.metrics["validation"]["loss"] == pytest.approx(
        math.log(first.metrics["validation"]["perplexity"]), rel=1e-3)
    assert any(reason.startswith("pass: validation.loss") for reason in second.reasons)
