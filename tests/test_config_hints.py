"""Config keys from other tools (transformers, TRL, Axolotl, LLaMA-Factory) and typos get a
"did you mean" naming the tuneloop setting and the line (core/config_hints.py)."""

from __future__ import annotations

import pytest

from tuneloop.config import ProjectConfig, load_config
from tuneloop.config_hints import FOREIGN_KEYS, TRAINER_OPTIONS, field_paths, hint
from tuneloop.errors import ConfigError

BASE = """\
project: p
task: causal-lm
model:
  name: m
data:
  sources: [{type: jsonl, path: d.jsonl}]
training:
  epochs: 1
"""


def problems(tmp_path, extra: str, where: str = "training") -> list[str]:
    text = BASE.replace(f"{where}:\n", f"{where}:\n{extra}") if where else BASE + extra
    path = tmp_path / "tuneloop.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, check_components=False)
    return info.value.errors


@pytest.mark.parametrize("key, value, expected", [
    ("num_train_epochs", "3", "training.num_train_epochs: not a tuneloop setting; did you mean "
                              "training.epochs?"),
    ("micro_batch_size", "2", "did you mean training.batch_size?"),
    ("per_device_train_batch_size", "2", "did you mean training.batch_size?"),
    ("gradient_accumulation_steps", "4", "did you mean training.gradient_accumulation?"),
    ("lr_scheduler_type", "cosine", "did you mean training.schedule?"),
    ("lora_r", "8", "did you mean training.lora.r?"),
    ("lora_alpha", "16", "did you mean training.lora.alpha?"),
    ("metric_for_best_model", "loss", "did you mean training.select_metric?"),
    ("bf16", "true", "did you mean training.precision?"),
    ("fp16", "true", "did you mean training.precision?"),
    ("warmup_steps", "10", "did you mean training.warmup_ratio? (a fraction of the training "
                           "steps, not a count)"),
    ("max_seq_length", "512", "did you mean model.max_length?"),
    ("sequence_len", "512", "did you mean model.max_length?"),
    ("weight_decay", "0.01", "- {name: weight_decay, value: 0.01}"),
    ("epoch", "3", "did you mean training.epochs?"),              # a typo, by difflib
    ("num_train_epoch", "3", 'did you mean training.epochs? ("num_train_epochs" elsewhere)'),
])
def test_training_keys_from_other_tools(tmp_path, key, value, expected):
    [problem] = problems(tmp_path, f"  {key}: {value}\n")
    assert problem.startswith(f"line 8: training.{key}: ") and expected in problem, problem


@pytest.mark.parametrize("key, where, expected", [
    ("base_model", "", "base_model: not a tuneloop setting; did you mean model.name?"),
    ("output_dir", "", "did you mean runs_dir?"),
    ("datasets", "", "did you mean data.sources?"),
    ("learning_rate", "model", "model.learning_rate: not a tuneloop setting; did you mean "
                               "training.learning_rate?"),
    ("val_set_size", "data", "did you mean data.split.validation?"),
    ("seed", "", "did you mean data.split.seed or training.seed?"),
])
def test_keys_in_the_wrong_section(tmp_path, key, where, expected):
    [problem] = problems(tmp_path, f"  {key}: 1\n" if where else f"{key}: 1\n", where)
    assert expected in problem, problem


def test_trainer_options_point_at_the_trainer(tmp_path):
    [problem] = problems(tmp_path, "  gradient_checkpointing: true\n")
    assert ("did you mean training.trainer.gradient_checkpointing? (trainer: {name: "
            "causal_lm_sft, gradient_checkpointing: true}") in problem


def test_an_unknown_key_without_a_likely_match_keeps_the_plain_message(tmp_path):
    [problem] = problems(tmp_path, "  zzzz: 1\n")
    assert problem == "line 8: training.zzzz: Extra inputs are not permitted"


def test_every_hint_points_at_a_setting_that_exists():
    from tuneloop import registries

    paths = set(field_paths(ProjectConfig))
    for key, (target, _) in FOREIGN_KEYS.items():
        assert target in paths, f"{key} -> {target}"
    trainers = registries.build()["trainers"]
    options = {option for name in trainers.names()
               for option in trainers.get(name).Options.model_fields}
    missing = {key: option for key, (option, _) in TRAINER_OPTIONS.items() if option not in options}
    # a trainer option no trainer has gives no hint at all rather than a wrong one
    for key in missing:
        assert hint(("training", key), ProjectConfig) is None or "trainer" not in \
            hint(("training", key), ProjectConfig)
    assert "gradient_checkpointing" not in missing and "packing" not in missing
