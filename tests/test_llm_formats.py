"""Instruction and chat datasets (plugins/sources/instruction_data.py): Alpaca, ShareGPT and
LLaMA-Factory's dataset_info.json, as JSON or JSON Lines, turned into the chats the causal-LM
trainer reads; every bad record a DataError naming the file and the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tuneloop import DataError, Example, registries
from tuneloop.plugins.sources import AlpacaSource, DatasetInfoSource, ShareGptSource

TEMPLATE = ("{% for m in messages %}<{{ m.role }}> {{ m.content }} <end> {% endfor %}"
            "{% if add_generation_prompt %}<assistant> {% endif %}")


def write_json(path: Path, records, indent: int | None = 2) -> Path:
    path.write_text(json.dumps(records, indent=indent), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records),
                    encoding="utf-8")
    return path


def load(source_class, path: Path, **options) -> list[Example]:
    return list(source_class(source_class.Options(path=str(path), **options)).load())


def error(source_class, path: Path, **options) -> DataError:
    with pytest.raises(DataError) as info:
        load(source_class, path, **options)
    return info.value


def chat(example: Example) -> list[dict[str, str]]:
    return json.loads(example.input)


ALPACA = [
    {"instruction": "Summarise the ticket.", "input": "My parcel is late again.",
     "output": "A late parcel.", "system": "You are a support agent."},
    {"instruction": "And in French?", "input": "", "output": "Un colis en retard.",
     "history": [["Say hello.", "Hello!"]]},
    {"instruction": "Is this urgent?", "input": "The site is down."},
]


# ------------------------------------------------------------------------------------------------
# Alpaca
# ------------------------------------------------------------------------------------------------


def test_alpaca_records_become_chats_with_system_history_and_the_answer(tmp_path):
    path = write_json(tmp_path / "alpaca.json", ALPACA)
    first, second, third = load(AlpacaSource, path)
    assert chat(first) == [{"role": "system", "content": "You are a support agent."},
                           {"role": "user", "content": "Summarise the ticket.\nMy parcel is late again."}]
    assert first.target == "A late parcel."
    assert chat(second) == [{"role": "user", "content": "Say hello."},
                            {"role": "assistant", "content": "Hello!"},
                            {"role": "user", "content": "And in French?"}]
    assert second.target == "Un colis en retard."
    # no output: a prompt to answer (for review), not a training example
    assert chat(third) == [{"role": "user", "content": "Is this urgent?\nThe site is down."}]
    assert third.target is None
    # each record's line and index in the array, and the file as the source
    lines = path.read_text().splitlines()
    assert '"Summarise the ticket."' in lines[first.provenance["line"]]
    assert [e.provenance["index"] for e in (first, second, third)] == [0, 1, 2]
    assert {e.source for e in (first, second, third)} == {"alpaca.json"}
    assert len({e.id for e in (first, second, third)}) == 3


def test_alpaca_json_lines_by_extension_by_content_and_by_option(tmp_path):
    by_extension = write_jsonl(tmp_path / "a.jsonl", ALPACA)
    by_content = write_jsonl(tmp_path / "a.json", ALPACA)      # JSON Lines in a .json file
    document = write_json(tmp_path / "a.txt", ALPACA, indent=None)  # one-line JSON array
    expected = [(e.input, e.target) for e in load(AlpacaSource, write_json(tmp_path / "b.json",
                                                                         ALPACA))]
    for path in (by_extension, by_content, document):
        assert [(e.input, e.target) for e in load(AlpacaSource, path)] == expected
    assert load(AlpacaSource, by_extension)[2].provenance == {"kind": "original", "line": 3}
    nested = write_json(tmp_path / "nested.json", {"train": ALPACA})
    assert len(load(AlpacaSource, nested, record_path="train")) == 3
    forced = error(AlpacaSource, by_content, file_format="json")
    assert forced.line == 1 and "not an array of records" in str(forced)


def test_alpaca_columns_rename_and_plain_chat_format(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Where is my refund?",
                                                "answer": "On its way.", "ticket": "T1"}])
    [example] = load(AlpacaSource, path, columns={"prompt": "question", "response": "answer"},
                     fields={"group": "ticket"})
    assert chat(example) == [{"role": "user", "content": "Where is my refund?"}]
    assert (example.target, example.group) == ("On its way.", "T1")
    [plain] = load(AlpacaSource, path, columns={"prompt": "question", "response": "answer"},
                   chat_format="plain")
    assert (plain.input, plain.target) == ("user: Where is my refund?\nassistant:", " On its way.")


@pytest.mark.parametrize("record, message", [
    ({"input": "no instruction", "output": "x"}, 'missing prompt column "instruction"'),
    ({"instruction": "", "input": "", "output": "x"}, "are both empty"),
    ({"instruction": 3, "output": "x"}, 'prompt ("instruction") must be a string, got a number'),
    ({"instruction": "q", "output": ["x"]}, 'response ("output") must be a string, got an array'),
    ({"instruction": "q", "output": "x", "history": "earlier"}, "history (\"history\") must be an "
                                                                "array"),
    ({"instruction": "q", "output": "x", "history": [["only one"]]}, "history[0] must be a pair"),
    ({"instruction": "q", "output": "x", "tools": "[{\"name\": \"f\"}]"}, '"tools": tool '
                                                                         "descriptions"),
    ({"instruction": "q", "chosen": "a", "rejected": "b"}, '"chosen": preference datasets'),
    ('"just text"', "a record must be a JSON object, got a string"),
])
def test_bad_alpaca_records_name_the_file_and_line(tmp_path, record, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [ALPACA[0], record])
    problem = error(AlpacaSource, path)
    assert problem.line == 2 and message in str(problem), str(problem)
    assert str(problem).startswith(f"{path}:2: ")


def test_bad_records_in_a_json_array_name_their_line_and_index(tmp_path):
    path = write_json(tmp_path / "bad.json", [ALPACA[0], ALPACA[1], {"output": "no prompt"}])
    problem = error(AlpacaSource, path)
    lines = path.read_text().splitlines()
    assert '"output": "no prompt"' in "".join(lines[problem.line - 1:problem.line + 1])
    assert "record 2: missing prompt column" in str(problem)


def test_on_error_skip_keeps_the_good_records_and_reports_the_bad(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [ALPACA[0], '{"instruction": "broken',
                                                  {"instruction": 5}, ALPACA[1]])
    source = AlpacaSource(AlpacaSource.Options(path=str(path), on_error="skip"))
    kept = list(source.load())
    assert [e.target for e in kept] == ["A late parcel.", "Un colis en retard."]
    assert [problem.line for problem in source.skipped] == [2, 3]


def test_instruction_options_refuse_what_they_cannot_read():
    with pytest.raises(ValidationError, match="comes from the record's columns"):
        AlpacaSource.Options(path="x", fields={"input": "instruction"})
    with pytest.raises(ValidationError, match='unknown column "promt" \\(did you mean "prompt"'):
        AlpacaSource.Options(path="x", columns={"promt": "q"})
    with pytest.raises(ValidationError, match="multimodal"):
        ShareGptSource.Options(path="x", columns={"images": "pics"})
    with pytest.raises(ValidationError, match='unknown tag "role"'):
        ShareGptSource.Options(path="x", tags={"role": "from"})


# ------------------------------------------------------------------------------------------------
# ShareGPT and OpenAI messages
# ------------------------------------------------------------------------------------------------

SHAREGPT = {"conversations": [
    {"from": "system", "value": "Be brief."},
    {"from": "human", "value": "What is the weather in Paris?"},
    {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
    {"from": "observation", "value": '{"temperature": 21}'},
    {"from": "gpt", "value": "It is 21 degrees."},
]}


def test_sharegpt_roles_map_as_in_llama_factory(tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", [SHAREGPT])
    [example] = load(ShareGptSource, path)
    assert chat(example) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": '{"name": "weather", "arguments": {"city": "Paris"}}'},
        {"role": "tool", "content": '{"temperature": 21}'}]
    assert example.target == "It is 21 degrees."


def test_sharegpt_reads_openai_messages_a_system_column_and_each_turn(tmp_path):
    path = write_json(tmp_path / "chats.json", [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                      {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ciao"}],
         "system": "Be kind."},
        {"conversations": [{"from": "human", "value": "still waiting"}]},
    ])
    first, waiting = load(ShareGptSource, path)
    assert chat(first)[0] == {"role": "system", "content": "Be kind."}
    assert first.target == "ciao" and chat(first)[-1] == {"role": "user", "content": "bye"}
    assert waiting.target is None
    one, two, _ = load(ShareGptSource, path, chat_turns="each")
    assert (one.target, two.target) == ("hello", "ciao")
    assert one.provenance["turn"] == 2 and two.provenance["turn"] == 4


def test_sharegpt_explicit_tags(tmp_path):
    path = write_jsonl(tmp_path / "chats.jsonl", [
        {"dialog": [{"speaker": "client", "text": "hi"}, {"speaker": "agent", "text": "hello"}]}])
    [example] = load(ShareGptSource, path, columns={"messages": "dialog"},
                     tags={"role_tag": "speaker", "content_tag": "text", "user_tag": "client",
                           "assistant_tag": "agent"})
    assert chat(example) == [{"role": "user", "content": "hi"}] and example.target == "hello"


@pytest.mark.parametrize("conversation, message", [
    ([], "must be a non-empty array of turns, got an empty array"),
    ("hello", "must be a non-empty array of turns, got a string"),
    ([{"from": "human", "value": "a"}, {"from": "human", "value": "b"}],
     "conversations[1]: turns must alternate"),
    ([{"from": "system", "value": "s"}, {"from": "gpt", "value": "b"}],
     "conversations[1]: turns must alternate"),
    ([{"from": "wizard", "value": "a"}], "conversations[0].from must be one of"),
    ([{"from": "human", "value": 3}], "conversations[0].value must be a string, got a number"),
    ([["human", "a"]], "conversations[0] must be an object, got an array"),
    ([{"from": "system", "value": "s"}], "has only a system turn"),
])
def test_bad_sharegpt_records_name_the_line_and_the_turn(tmp_path, conversation, message):
    path = write_jsonl(tmp_path / "chats.jsonl", [SHAREGPT, {"conversations": conversation}])
    problem = error(ShareGptSource, path)
    assert problem.line == 2 and message in str(problem), str(problem)


def test_a_model_without_a_chat_template_is_refused_before_training(tmp_path):
    from tuneloop.testing import tiny_tokenizer

    path = write_jsonl(tmp_path / "chats.jsonl", [SHAREGPT])
    source = ShareGptSource(ShareGptSource.Options(path=str(path)))
    assert source.needs_tokenizer
    source.tokenizer = tiny_tokenizer(["hi"], style="gpt2")
    with pytest.raises(DataError, match="has none; use chat_format: plain"):
        list(source.load())
    source.tokenizer.chat_template = TEMPLATE
    assert len(list(source.load())) == 1


# ------------------------------------------------------------------------------------------------
# LLaMA-Factory dataset_info.json
# ------------------------------------------------------------------------------------------------


def dataset_info(folder: Path, entries: dict) -> Path:
    return write_json(folder / "dataset_info.json", entries)


def test_dataset_info_alpaca_entry_with_columns_reads_only_the_named_columns(tmp_path):
    write_json(tmp_path / "support.json", [{"q": "Reset my password", "extra": "ignored input",
                                            "a": "Use the link.", "input": "not read"}])
    info = dataset_info(tmp_path, {"support": {"file_name": "support.json",
                                               "columns": {"prompt": "q", "response": "a"}},
                                   "plain": {"file_name": "support.json"}})
    [example] = load(DatasetInfoSource, info, dataset="support")
    # LLaMA-Factory's rule: with columns given, query (input) is not read unless named
    assert chat(example) == [{"role": "user", "content": "Reset my password"}]
    assert example.target == "Use the link." and example.source == "support.json"
    # without columns, the Alpaca defaults: a record without "instruction" is an error naming the
    # data file (not the dataset_info.json)
    problem = error(DatasetInfoSource, info, dataset="plain")
    assert problem.source == str(tmp_path / "support.json") and problem.line == 2


def test_dataset_info_sharegpt_and_openai_entries(tmp_path):
    write_jsonl(tmp_path / "chats.jsonl", [{"conversations": SHAREGPT["conversations"]}])
    write_jsonl(tmp_path / "openai.jsonl", [{"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}]}])
    info = dataset_info(tmp_path, {
        "chats": {"file_name": "chats.jsonl", "formatting": "sharegpt"},
        "openai": {"file_name": "openai.jsonl", "formatting": "sharegpt",
                   "columns": {"messages": "messages"},
                   "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                            "assistant_tag": "assistant", "system_tag": "system"}},
        "openai2": {"file_name": "openai.jsonl", "formatting": "openai",
                    "columns": {"messages": "messages"}},
    })
    [tools] = load(DatasetInfoSource, info, dataset="chats")
    assert chat(tools)[2]["role"] == "assistant" and chat(tools)[3]["role"] == "tool"
    for name in ("openai", "openai2"):
        [example] = load(DatasetInfoSource, info, dataset=name)
        assert chat(example) == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "hi"}]
        assert example.target == "hello"
    # the entry's tags are exact: ShareGPT's "from" keys are not read under role/content tags
    write_jsonl(tmp_path / "openai.jsonl", [{"messages": SHAREGPT["conversations"]}])
    assert "messages[0].role must be one of" in str(error(DatasetInfoSource, info, dataset="openai"))


@pytest.mark.parametrize("entries, message", [
    ({"support": {"file_name": "x.json"}}, 'no dataset "suport" (did you mean "support"?)'),
    ({"suport": {"hf_hub_url": "org/data"}}, "hf_hub_url: only entries with a local file_name"),
    ({"suport": {"file_name": "x.json", "ranking": True}}, "ranking: preference datasets"),
    ({"suport": {"file_name": "x.json", "formatting": "parquet"}}, 'formatting is "parquet"'),
    ({"suport": {"file_name": "x.json", "columns": {"images": "i"}}}, "multimodal"),
    ({"suport": {"file_name": "x.json", "num_samples": 10}}, "set max_examples"),
    ({"suport": {"formatting": "alpaca"}}, "has no file_name"),
    ({"suport": {"file_name": "folder"}}, "is a folder"),
    ({"suport": {"file_name": "missing.json"}}, "file not found"),
])
def test_bad_dataset_info_entries(tmp_path, entries, message):
    (tmp_path / "folder").mkdir()
    write_json(tmp_path / "x.json", ALPACA)
    info = dataset_info(tmp_path, entries)
    problem = error(DatasetInfoSource, info, dataset="suport")
    assert message in str(problem), str(problem)


def test_dataset_info_that_is_not_json_names_its_line(tmp_path):
    info = tmp_path / "dataset_info.json"
    info.write_text('{\n  "a": {"file_name": "x.json",}\n}\n')
    problem = error(DatasetInfoSource, info, dataset="a")
    assert problem.line == 2 and "invalid JSON" in str(problem)
    with pytest.raises(ValidationError, match="columns come from the dataset_info.json"):
        DatasetInfoSource.Options(path="x", dataset="a", columns={"prompt": "q"})


# ------------------------------------------------------------------------------------------------
# Registered, causal-LM only, and read by the trainer as chats
# ------------------------------------------------------------------------------------------------


def test_the_formats_are_registered_for_causal_lm_only(tmp_path):
    from tuneloop.config import ProjectConfig, check_config_components
    from tuneloop.errors import ConfigError

    found = registries.build()
    for name, source in (("alpaca", AlpacaSource), ("sharegpt", ShareGptSource),
                         ("dataset_info", DatasetInfoSource)):
        assert found.data_sources.get(name) is source
    config = ProjectConfig.model_validate({
        "project": "p", "task": "classification", "model": {"name": "m"},
        "data": {"sources": [{"type": "alpaca", "path": "a.json"}]}})
    with pytest.raises(ConfigError, match='"alpaca" does not support task classification'):
        check_config_components(config)


def test_the_trainer_trains_on_every_assistant_turn_of_an_alpaca_chat(tmp_path):
    from tuneloop.plugins.trainers.causal_lm import CausalLMRecipe
    from tuneloop.testing import cycle_context, tiny_gpt2

    path = write_json(tmp_path / "alpaca.json", ALPACA)
    examples = load(AlpacaSource, path)
    texts = [TEMPLATE] + [turn["content"] for e in examples for turn in chat(e)] + [
        e.target for e in examples if e.target]
    model = tiny_gpt2(tmp_path / "model", texts)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = TEMPLATE
    recipe = CausalLMRecipe(cycle_context(tmp_path / "run", task="causal-lm", start_model=model,
                                          max_length=128))
    assert recipe.is_chat(examples[1])
    encoded = recipe.encode(examples[1], tokenizer)
    trained = tokenizer.decode([t for t, label in zip(encoded["input_ids"], encoded["labels"])
                                if label != -100])
    # the history's answer and the final answer, with their end-of-turn markers; no user turn
    assert trained.split() == ["hello", "!", "<", "end", ">",
                               "un", "colis", "en", "retard", ".", "<", "end", ">"]


# ------------------------------------------------------------------------------------------------
# A whole cycle on instruction data whose answers are all different
# ------------------------------------------------------------------------------------------------

THINGS = ["kite", "boat", "lamp", "chair", "scarf", "mug", "ball", "door", "shirt", "car"]
COLOURS = ["red", "blue", "green"]


def test_alpaca_and_sharegpt_data_with_unique_answers_make_a_whole_cycle(tmp_path):
    """Every answer differs, so nothing can be stratified by it: the split still fills every
    split, and the cycle measures validation and test generations and queues review outputs."""
    import yaml
    from transformers import AutoTokenizer

    from tuneloop.config import load_config
    from tuneloop.cycle import run_cycle
    from tuneloop.store import Store
    from tuneloop.testing import tiny_gpt2

    alpaca, chats = [], []
    for number in range(30):
        thing, colour = THINGS[number % 10], COLOURS[number % 3]
        alpaca.append({"instruction": f"what colour is {thing} {number} ?", "input": "",
                       "output": f"{thing} {number} is {colour}"})
        chats.append({"conversations": [
            {"from": "human", "value": f"name the colour of {thing} {number + 30}"},
            {"from": "gpt", "value": f"{colour} is {thing} {number + 30}"}]})
    write_json(tmp_path / "alpaca.json", alpaca)
    write_jsonl(tmp_path / "chats.jsonl", chats)
    texts = [TEMPLATE] + [f"{r['instruction']} {r['output']}" for r in alpaca] + [
        " ".join(turn["value"] for turn in c["conversations"]) for c in chats]
    model = tiny_gpt2(tmp_path / "model", texts)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(model)
    config_path = tmp_path / "tuneloop.yaml"
    config_path.write_text(yaml.safe_dump({
        "project": "formats", "task": "causal-lm",
        "model": {"name": model, "max_length": 48},
        "data": {"sources": [{"type": "alpaca", "path": "alpaca.json"},
                             {"type": "sharegpt", "path": "chats.jsonl"}],
                 "split": {"train": 0.5, "validation": 0.2, "test": 0.1, "review": 0.2,
                           "seed": 3},
                 # "lamp 2" and "lamp 22" are near copies; this test is about the formats
                 "leakage": {"action": "report"}},
        "training": {"trainer": {"name": "causal_lm_sft", "max_new_tokens": 4}, "epochs": 1,
                     "learning_rate": 0.005, "batch_size": 8, "seed": 1},
        "evaluation": {"metrics": ["exact_match", "chrf", "perplexity"]},
        "review": {"size": 6},
    }), encoding="utf-8")
    config = load_config(config_path)
    result = run_cycle(config, quiet=True)
    assert result.status == "done"
    with Store(config.database_path) as store:
        counts = {split: len(store.examples(result.cycle_id, split))
                  for split in ("train", "validation", "test", "review")}
        outputs = store.outputs(result.cycle_id)
    assert all(counts.values()) and sum(counts.values()) == 60, counts
    for split in ("validation", "test"):
        assert {"exact_match", "chrf", "perplexity"} <= set(result.metrics[split]), split
    assert result.queued == 6 and outputs
    # the review answers were generated for chats that end with the user's question
    assert all(json.loads(row["input"])[-1]["role"] == "user" for row in outputs)


def test_chats_are_compared_by_their_words_not_their_markup_or_system_prompt():
    """The leakage check and the near-duplicate cleaner read a chat's turns, not its JSON: two
    different short questions with the dataset's shared system prompt are not near copies."""
    from tuneloop.near_duplicates import NearDuplicateIndex, chat_text, normalise

    system = {"role": "system", "content": "You are the support assistant of Lumen, an online "
                                           "shop with a bank account and cards. Be brief."}

    def asked(question: str) -> str:
        return json.dumps([system, {"role": "user", "content": question}])

    assert chat_text(asked("Where is my parcel?")) == "Where is my parcel?"
    assert normalise(asked("Where's my PARCEL?")) == normalise("wheres my parcel")
    for text in ("[{not json", "[1, 2]", '[{"role": "user"}]', "plain text"):
        assert chat_text(text) == text
    index = NearDuplicateIndex(threshold=0.9)
    index.add([asked("Where is my parcel?")])
    assert index.match([asked("How do I reset my password?")]) == [None]
    assert index.match([asked("Where is my parcel ?")])[0] is not None


def test_jsonl_messages_can_keep_the_chat_for_the_trainer(tmp_path):
    from tuneloop.plugins.sources import JsonlSource

    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
             {"role": "assistant", "content": "Ciao."}]
    path = write_jsonl(tmp_path / "chats.jsonl", [{"messages": turns},
                                                  {"messages": [turns[0], turns[2]]}])
    source = JsonlSource(JsonlSource.Options(path=str(path), chat_format="messages",
                                             on_error="skip"))
    [example] = list(source.load())
    assert chat(example) == turns[:4] and example.target == "Ciao."
    [problem] = source.skipped
    assert problem.line == 2 and "assistant turn with no user turn before it" in str(problem)
