"""Generation for the causal-LM trainers: batched left-padded decoding, decoding options, stop
strings, candidates for review, generation metrics during training (and selecting on them).

Tiny random GPT-2 models built in the test (no network, seconds on a CPU).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tuneloop import Example  # noqa: E402
from tuneloop.errors import ConfigError  # noqa: E402
from tuneloop.plugins.metrics import ExactMatch, Perplexity, Rouge  # noqa: E402
from tuneloop.plugins.regularizers import EarlyStopping  # noqa: E402
from tuneloop.plugins.trainers import causal_lm, generation  # noqa: E402
from tuneloop.testing import cycle_context, tiny_gpt2  # noqa: E402

ANIMALS = ["cat", "dog", "cow", "owl", "fox", "bee"]
COLOURS = ["red", "blue", "green"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def examples() -> list[Example]:
    return [Example(f"say {a} {c}", f"{a} {c}") for a in ANIMALS for c in COLOURS]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    texts = [e.input for e in examples()] + ["a much longer prompt to pad the others with words"]
    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"), texts)


def load(model_dir):
    model, tokenizer = causal_lm.load_causal_lm(model_dir)
    return model.eval(), tokenizer


# --------------------------------------------------------------------------------------------------
# Batched, left-padded generation
# --------------------------------------------------------------------------------------------------


def test_batched_left_padded_greedy_answers_equal_one_prompt_at_a_time(base):
    import torch

    model, tokenizer = load(base)
    prompts = ["say cat", "a much longer prompt to pad the others with words", "say owl blue",
               "dog"]
    ids = [causal_lm.prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    assert len({len(prompt) for prompt in ids}) > 2  # really padded
    options = generation.GenerationOptions(max_new_tokens=8)
    with torch.inference_mode():
        batched = generation.generate_answers(model, tokenizer, ids, options, new_tokens=8,
                                              batch_size=4)
        alone = [generation.generate_answers(model, tokenizer, [prompt], options, new_tokens=8,
                                             batch_size=1)[0] for prompt in ids]
    assert [answers[0][0] for answers in batched] == [answers[0][0] for answers in alone]
    for (_, together), (_, single) in zip([a[0] for a in batched], [a[0] for a in alone]):
        assert together == pytest.approx(single, abs=1e-4)
    assert all(answers[0][0] for answers in batched)  # a random model still says something


def test_a_tokenizer_without_a_pad_token_gets_eos_and_pads_on_the_left(base, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    base_copy = tmp_path / "no-pad"
    shutil.copytree(base, base_copy)
    tokenizer = AutoTokenizer.from_pretrained(base_copy)
    tokenizer.pad_token = None  # as GPT-2's own tokenizer
    tokenizer.save_pretrained(base_copy)
    model, loaded = load(str(base_copy))
    assert loaded.pad_token_id == loaded.eos_token_id
    ids = [causal_lm.prompt_token_ids(loaded, p) for p in ["say cat", "say owl blue red"]]
    answers = generation.generate_answers(model, loaded, ids,
                                          generation.GenerationOptions(max_new_tokens=3),
                                          new_tokens=3, batch_size=2)
    assert len(answers) == 2 and all(len(found) == 1 for found in answers)


def test_stop_strings_end_the_answer_before_them(base):
    model, tokenizer = load(base)
    ids = [causal_lm.prompt_token_ids(tokenizer, "say cat")]
    options = generation.GenerationOptions(max_new_tokens=12)
    [[(free, _)]] = generation.generate_answers(model, tokenizer, ids, options, new_tokens=12,
                                                batch_size=1)
    words = free.split()
    assert len(words) >= 3
    stop = words[2]
    stopped = generation.GenerationOptions(max_new_tokens=12, stop=[stop])
    [[(cut, _)]] = generation.generate_answers(model, tokenizer, ids, stopped, new_tokens=12,
                                               batch_size=1)
    assert cut == free[:free.index(stop)].strip()
    assert generation.truncate_at_stop("one two ### three", ["###", "two"]) == "one "


def test_sampling_gives_several_different_seeded_candidates(base):
    model, tokenizer = load(base)
    ids = [causal_lm.prompt_token_ids(tokenizer, p) for p in ["say cat", "say owl blue"]]
    options = generation.GenerationOptions(max_new_tokens=6, do_sample=True, temperature=1.5,
                                           num_return_sequences=3)
    first = generation.generate_answers(model, tokenizer, ids, options, new_tokens=6,
                                        batch_size=2, answers_per_prompt=3, seed=7)
    again = generation.generate_answers(model, tokenizer, ids, options, new_tokens=6,
                                        batch_size=2, answers_per_prompt=3, seed=7)
    assert [len(found) for found in first] == [3, 3]
    assert first == again  # seeded: the same candidates
    assert all(len({text for text, _ in found}) > 1 for found in first)
    assert all(0 < confidence <= 1 for found in first for _, confidence in found)


def test_several_answers_need_sampling_and_validate_names_the_option(tmp_path):
    with pytest.raises(ValueError, match="needs do_sample: true"):
        generation.GenerationOptions(num_return_sequences=2)
    with pytest.raises(ValueError, match="greater than 0"):
        generation.GenerationOptions(temperature=0)
    with pytest.raises(ValueError, match="must not be empty"):
        generation.GenerationOptions(stop=["###", ""])
    assert generation.GenerationOptions(do_sample=True, num_return_sequences=2)

    from tuneloop.config import load_config

    config = tmp_path / "tuneloop.yaml"
    config.write_text("project: p\ntask: causal-lm\nmodel: {name: gpt2}\n"
                      "data: {sources: [{type: jsonl, path: d.jsonl}]}\n"
                      "training:\n  trainer:\n    name: causal_lm_sft\n"
                      "    num_return_sequences: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert "line 8: training.trainer.num_return_sequences: above 1 needs do_sample: true" in \
        str(raised.value)


def test_predict_gives_candidates_for_the_review_split_only(base, tmp_path):
    context = cycle_context(tmp_path, task="causal-lm", start_model=base)
    trainer = causal_lm.CausalLMTrainer(causal_lm.CausalLMOptions(
        do_sample=True, num_return_sequences=3, max_new_tokens=4, generation_batch_size=2))
    prompts = [Example("say cat red", "cat red"), Example("say dog"), Example("say owl blue")]
    plain = trainer.predict(base, prompts, context)
    assert [p.candidates for p in plain] == [[], [], []]
    context.predicting = "review"
    review = trainer.predict(base, prompts, context)
    assert [p.example_id for p in review] == [e.id for e in prompts]
    for prediction in review:
        assert len(prediction.candidates) == 2
        assert all(c.example_id == prediction.example_id for c in prediction.candidates)
    assert review[0].extra["tokens"] == 3 and review[1].extra == {}  # "cat red" and eos


def test_max_new_tokens_falls_back_to_the_deprecated_training_field(base, tmp_path):
    context = cycle_context(tmp_path, task="causal-lm", start_model=base,
                            training={"max_new_tokens": 5})
    assert generation.max_new_tokens(generation.GenerationOptions(), context) == 5
    assert generation.max_new_tokens(generation.GenerationOptions(max_new_tokens=9), context) == 9


# --------------------------------------------------------------------------------------------------
# Generation metrics while training, and selecting on them
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_generation_metrics_are_logged_at_each_evaluation_and_select_the_checkpoint(tmp_path):
    train = examples()
    validation = train[:4]
    base = tiny_gpt2(tmp_path / "gpt2", [example.input for example in train])
    logged: list[tuple[int, dict]] = []
    context = cycle_context(tmp_path / "run", task="causal-lm", start_model=base,
                            metrics=[ExactMatch(), Rouge(), Perplexity()],
                            training={"epochs": 10, "learning_rate": 3e-3, "batch_size": 6,
                                      "eval_every": 6, "select_metric": "rougeL",
                                      "tensorboard": False},
                            log=lambda step, logs: logged.append((step, logs)))
    trainer = causal_lm.CausalLMTrainer(causal_lm.CausalLMOptions(
        generation_eval_samples=4, max_new_tokens=4))
    stopping = EarlyStopping(EarlyStopping.Options(patience=1))  # on select_metric: rougeL
    result = trainer.train(context, {"train": train, "validation": validation}, [stopping])

    evaluations = {step: logs for step, logs in logged if "eval_loss" in logs}
    # 30 steps planned; rougeL did not improve at step 18, so training stopped there
    assert list(evaluations) == [6, 12, 18] and result.global_step == 18
    for logs in evaluations.values():
        assert {"eval_exact_match", "eval_rouge1", "eval_rouge2", "eval_rougeL"} <= set(logs)
        assert "eval_perplexity" not in logs  # needs the references' likelihood: not generated
    rouge = {step: logs["eval_rougeL"] for step, logs in evaluations.items()}
    loss = {step: logs["eval_loss"] for step, logs in evaluations.items()}
    assert rouge[12] > rouge[6]  # it learnt to answer
    # the checkpoint is the best by rougeL (higher is better; the first of equals), not by loss
    assert result.best_metric == max(rouge.values())
    assert result.best_step == min(step for step in rouge if rouge[step] == max(rouge.values()))
    assert result.best_step != min(loss, key=loss.get)


def test_the_sample_is_fixed_by_the_seed_whatever_the_order():
    data = examples()
    sample = generation.fixed_sample(data, 4, seed=1)
    assert generation.fixed_sample(list(reversed(data)), 4, seed=1) == sample
    assert generation.fixed_sample(data, 4, seed=2) != sample
    assert generation.fixed_sample(data + [Example("no target")], 100, seed=1) == \
        generation.fixed_sample(data, 100, seed=1)


@pytest.mark.parametrize("select, samples, message", [
    ("rougeL", 0, "set training.trainer.generation_eval_samples"),
    ("rouge", 4, 'gives rouge1, rouge2, rougeL: select one of them'),
    ("chrf", 4, "is not a validation figure of evaluation.metrics"),
])
def test_selecting_on_a_figure_that_is_not_measured_is_a_config_error(tmp_path, select, samples,
                                                                     message):
    context = cycle_context(tmp_path, task="causal-lm", start_model=str(tmp_path / "unused"),
                            metrics=[ExactMatch(), Rouge()],
                            training={"select_metric": select})
    trainer = causal_lm.CausalLMTrainer(causal_lm.CausalLMOptions(generation_eval_samples=samples))
    with pytest.raises(ConfigError, match=message):
        trainer.train(context, {"train": [Example("a", "b")], "validation": examples()}, [])


def test_direction_follows_the_metric(tmp_path):
    context = cycle_context(tmp_path, task="causal-lm", start_model="unused",
                            metrics=[ExactMatch(), Perplexity()])
    evaluator = generation.GenerationEvaluator(
        context, generation.GenerationOptions(generation_eval_samples=2), examples())
    assert evaluator.greater_is_better("exact_match") is True
    assert evaluator.greater_is_better("loss") is False


# --------------------------------------------------------------------------------------------------
# Candidates for review: one model's answers ranked in pairs, preferences trained with DPO
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_candidates_are_queued_in_pairs_and_a_preference_trains_the_next_cycle(tmp_path):
    from tuneloop.auth import create_reviewer
    from tuneloop.testing import run_tiny_cycle

    sampling = {"name": "causal_lm_sft", "do_sample": True, "temperature": 2.0,
                "num_return_sequences": 3, "max_new_tokens": 3}
    cycle = run_tiny_cycle(tmp_path, task="causal-lm",
                           config={"training": {"trainer": sampling},
                                   "review": {"size": 4, "pair_size": 6},
                                   "feedback": {"policies": ["preferences"]}})
    with cycle.store() as store:
        singles = store.query("SELECT q.output_id, o.candidate FROM review_queue q JOIN outputs o "
                              "ON o.id = q.output_id WHERE q.pair_output_id IS NULL")
        pairs = store.query(
            "SELECT q.id AS queue_id, q.output_id, q.pair_output_id, q.sampler, a.example_id, "
            "a.output, "
            "a.cycle_id, a.candidate, b.example_id AS pair_example_id, b.output AS pair_output, "
            "b.cycle_id AS pair_cycle_id, b.candidate AS pair_candidate "
            "FROM review_queue q JOIN outputs a ON a.id = q.output_id "
            "JOIN outputs b ON b.id = q.pair_output_id ORDER BY q.priority")
        per_prompt = store.query("SELECT example_id, COUNT(*) AS answers, "
                                 "GROUP_CONCAT(candidate) AS numbers FROM outputs "
                                 "GROUP BY example_id")
        reviewer = create_reviewer(store, "ann", "a-long-enough-password")
        from tuneloop.review_app import queries, stats

        # the review app shows the pair side by side; the expert prefers the later candidate
        chosen = pairs[0]
        viewer = {"id": reviewer, "name": "ann", "role": "expert"}
        shown = queries.item(store, viewer, chosen["queue_id"])
        sides = {shown[side]["output_id"]: side for side in ("left", "right")}
        assert set(sides) == {chosen["output_id"], chosen["pair_output_id"]}
        queries.save_rating(store, viewer, chosen["queue_id"], verdict="approve",
                            preferred=sides[chosen["pair_output_id"]])

        # the dashboard's "newer cycle against the previous one" leaves candidate pairs out
        assert stats.pairwise_wins(store, {"id": reviewer, "role": "admin"}) == []

    assert len(singles) == 4 and all(row["candidate"] == 0 for row in singles)
    assert all(row["answers"] == 3 and row["numbers"] == "0,1,2" for row in per_prompt)
    assert 1 <= len(pairs) <= 6
    prompts_with_pairs = {row["example_id"] for row in pairs}
    assert len(prompts_with_pairs) == min(4, len(pairs))  # a pair per prompt before a second
    for row in pairs:
        assert row["sampler"] == "candidates"
        assert row["example_id"] == row["pair_example_id"]  # the same prompt
        assert row["cycle_id"] == row["pair_cycle_id"] == cycle.cycle_id  # one model
        assert row["output"] != row["pair_output"]
        assert row["candidate"] < row["pair_candidate"]

    second = run_tiny_cycle(tmp_path, task="causal-lm",
                            config={"training": {"trainer": {"name": "dpo", "beta": 0.1}},
                                    "feedback": {"policies": ["preferences"]}})
    trained = [row for row in second.examples("train")
               if row["provenance"].get("policy") == "preferences"]
    assert len(trained) == 1
    assert trained[0]["target"] == chosen["pair_output"]
    assert second.result.status == "done"


def test_m006_numbers_candidates_on_a_blank_database_and_on_one_of_the_previous_release(tmp_path):
    import sqlite_utils

    from tuneloop import Prediction
    from tuneloop.store import Store
    from tuneloop.store.migrations import MIGRATIONS

    # the previous release's schema (m001-m004), with an output in it
    old = sqlite_utils.Database(tmp_path / "old.db")
    old.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for migration in MIGRATIONS:
        if migration.__name__ < "m005":
            migration(old)
            old["_migrations"].insert({"name": migration.__name__, "applied_at": "then"})
    old["cycles"].insert({"id": 1, "project": "p", "status": "done", "task": "causal-lm",
                          "seed": 1, "config": "{}", "plugins": "[]", "base_model": "b",
                          "start_model": "b", "started_at": "then"})
    old["outputs"].insert({"cycle_id": 1, "example_id": "e", "input": "say cat",
                           "output": "cat", "created_at": "then"})
    old.conn.commit()
    old.close()

    for path in (tmp_path / "old.db", tmp_path / "blank.db"):
        with Store(path) as store:
            assert "m006_output_candidates" in store.applied_migrations()
            cycle_id = 1 if path.name == "old.db" else store.create_cycle(
                project="p", task="causal-lm", seed=1, config={}, plugins=[], base_model="b",
                start_model="b", parent_id=None)
            example = Example("say dog", "dog")
            prediction = Prediction(example.id, "dog", 0.5, candidates=[
                Prediction(example.id, "cat", 0.2), Prediction(example.id, "dog dog", 0.1)])
            [output_id] = store.add_outputs(cycle_id, [prediction], [example])
            answers = store.candidate_outputs([output_id])[output_id]
            assert [(row["output"], row["candidate"]) for row in answers] == \
                [("dog", 0), ("cat", 1), ("dog dog", 2)]
            if path.name == "old.db":  # an output from before the migration is candidate 0
                assert store.one("SELECT candidate FROM outputs WHERE output = 'cat' AND "
                                 "example_id = 'e'")["candidate"] == 0


# --------------------------------------------------------------------------------------------------
# A whole cycle on Alpaca-style data
# --------------------------------------------------------------------------------------------------

THINGS = ["kite", "door", "mug", "lamp", "boat", "scarf", "chair", "ball", "car", "shirt"]


@pytest.mark.slow
def test_a_cycle_on_alpaca_style_data_reports_generation_figures_and_queues_candidates(tmp_path):
    """The issue's new user: an Alpaca-style file whose answers all differ, read with the jsonl
    source; generation metrics during training select the checkpoint (chrF), validation and test
    get generation figures, and the review split gets two candidates per prompt."""
    import json

    import yaml

    from tuneloop.config import load_config
    from tuneloop.cycle import run_cycle
    from tuneloop.store import Store

    records = [{"instruction": f"what colour is the {THINGS[n % 10]} {n} ?",
                "output": f"the {THINGS[n % 10]} {n} is {COLOURS[n % 3]}"} for n in range(40)]
    (tmp_path / "alpaca.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records),
                                           encoding="utf-8")
    model = tiny_gpt2(tmp_path / "model", [f"{r['instruction']} {r['output']}" for r in records])
    config_path = tmp_path / "tuneloop.yaml"
    config_path.write_text(yaml.safe_dump({
        "project": "alpaca", "task": "causal-lm", "model": {"name": model, "max_length": 32},
        "data": {"sources": [{"type": "jsonl", "path": "alpaca.jsonl",
                              "fields": {"prompt": "instruction", "completion": "output"}}],
                 "split": {"train": 0.5, "validation": 0.2, "test": 0.1, "review": 0.2},
                 "leakage": {"near_threshold": None}},  # "the door 1" and "the door 11"
        "training": {"trainer": {"name": "causal_lm_sft", "max_new_tokens": 6,
                                 "generation_eval_samples": 4, "do_sample": True,
                                 "num_return_sequences": 2, "temperature": 1.5},
                     "select_metric": "chrf", "epochs": 2, "eval_every": 3,
                     "learning_rate": 0.005, "batch_size": 8, "tensorboard": False},
        "evaluation": {"metrics": ["exact_match", "rouge", "chrf"]},
        "review": {"size": 5},
    }), encoding="utf-8")
    config = load_config(config_path)
    result = run_cycle(config, quiet=True)

    assert result.status == "done"
    for split in ("validation", "test"):
        assert {"exact_match", "rouge1", "rougeL", "chrf"} <= set(result.metrics[split]), split
    with Store(config.database_path) as store:
        counts = {split: len(store.examples(result.cycle_id, split))
                  for split in ("train", "validation", "test", "review")}
        during = [row for row in store.metric_history(result.cycle_id)
                  if row["split"] == "validation" and row["name"] == "chrf"]
        queue = store.query("SELECT q.sampler, q.pair_output_id FROM review_queue q "
                            "WHERE q.cycle_id = ?", [result.cycle_id])
        answers = store.query("SELECT COUNT(*) AS n FROM outputs WHERE cycle_id = ? "
                              "GROUP BY example_id", [result.cycle_id])
    assert all(counts.values()), counts
    assert [row["step"] for row in during] == [3, 6]  # at each evaluation, with its step
    assert {row["n"] for row in answers} == {2}  # every review prompt: two candidates
    singles = [row for row in queue if row["pair_output_id"] is None]
    pairs = [row for row in queue if row["pair_output_id"] is not None]
    assert len(singles) == 5 and pairs and {row["sampler"] for row in pairs} == {"candidates"}
