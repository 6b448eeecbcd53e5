"""Preference training from expert feedback: DPO on pairs, KTO on thumbs up/down, with hand-made
examples of the kinds the feedback policies produce (``rejected`` set: a pair; ``desirable``
set: a judged completion)."""

from __future__ import annotations

import math

import pytest

from tuneloop import Example
from tuneloop.plugins.trainers import preference
from tuneloop.plugins.trainers.causal_lm import CausalLMRecipe, load_causal_lm
from tuneloop.testing import cycle_context, tiny_gpt2

ANIMALS = ["cat", "dog", "cow", "owl", "fox", "bee"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    texts = [f"say {animal} red blue green" for animal in ANIMALS]
    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"), texts)


def preference_margin(model_dir: str, base_dir: str, tmp_path) -> float:
    """Mean over animals of log p(red) - log p(blue) after "say <animal>"."""
    context = cycle_context(tmp_path, task="causal-lm", start_model=base_dir)
    model, tokenizer = load_causal_lm(model_dir)
    recipe = CausalLMRecipe(context)
    features = []
    for animal in ANIMALS:
        red = recipe.encode(Example(f"say {animal}", f"{animal} red"), tokenizer)
        blue = recipe.encode(Example(f"say {animal}", f"{animal} blue"), tokenizer)
        features.append({"kind": preference.PAIR,
                         "chosen_input_ids": red["input_ids"], "chosen_labels": red["labels"],
                         "rejected_input_ids": blue["input_ids"],
                         "rejected_labels": blue["labels"]})
    values = preference.reference_log_probabilities(model, features, tokenizer.pad_token_id, 8)
    return sum(value["chosen"] - value["rejected"] for value in values) / len(values)


def train(trainer, base_model, tmp_path, train, epochs=10):
    context = cycle_context(tmp_path / trainer.name, task="causal-lm", start_model=base_model,
                            training={"epochs": epochs, "learning_rate": 5e-3, "batch_size": 4,
                                      "tensorboard": False})
    validation = [Example("say cat", "cat red")]
    return trainer.train(context, {"train": train, "validation": validation}, [])


def test_dpo_prefers_the_chosen_completion(base_model, tmp_path):
    pairs = [Example(f"say {a}", f"{a} red", rejected=f"{a} blue") for a in ANIMALS]
    plain = [Example(f"say {a}", f"{a} green") for a in ANIMALS[:2]]
    thumbs_down = [Example(f"say {a}", f"{a} blue", desirable=False) for a in ANIMALS[:3]]
    trainer = preference.DPOTrainer(preference.DPOTrainer.Options(beta=0.5))
    result = train(trainer, base_model, tmp_path, pairs + plain + thumbs_down)

    before = preference_margin(base_model, base_model, tmp_path)
    after = preference_margin(result.model_dir, base_model, tmp_path)
    assert abs(before) < 1.0 and after > before + 3.0
    assert result.extra["left_out_undesirable"] == 3  # nothing to pair them with
    logged = [entry for entry in result.history if "rewards/accuracy" in entry]
    assert logged and logged[-1]["rewards/accuracy"] == 1.0
    assert logged[-1]["rewards/margin"] > logged[0]["rewards/margin"]


def test_kto_raises_desirable_completions_above_undesirable_ones(base_model, tmp_path):
    judged = ([Example(f"say {a}", f"{a} red", desirable=True) for a in ANIMALS] +
              [Example(f"say {a}", f"{a} blue", desirable=False) for a in ANIMALS])
    trainer = preference.KTOTrainer(preference.KTOTrainer.Options(beta=0.5))
    result = train(trainer, base_model, tmp_path, judged)
    after = preference_margin(result.model_dir, base_model, tmp_path)
    assert after > preference_margin(base_model, base_model, tmp_path) + 3.0
    logged = [entry for entry in result.history if "rewards/desirable" in entry]
    assert logged[-1]["rewards/desirable"] > 0 > logged[-1]["rewards/undesirable"]
    assert all(entry["kl"] >= 0 for entry in logged)


class FixedLogits:
    """A stand-in model whose next-token log-probabilities are set per sequence by the test."""

    def __init__(self, log_probabilities):
        self.log_probabilities = log_probabilities  # sequence -> its completion token's logp
        self.training = True

    def __call__(self, input_ids, attention_mask):
        import torch

        vocabulary = 4
        logits = torch.full((input_ids.shape[0], input_ids.shape[1], vocabulary), -1e4)
        for row, value in enumerate(self.log_probabilities):
            # position 0 predicts token 1 (the completion token 3) with probability e^value
            logits[row, 0, 3] = value
            logits[row, 0, 0] = math.log(1 - math.exp(value))
        return type("Output", (), {"logits": logits})()


def pair_feature(reference_chosen, reference_rejected):
    return {"kind": preference.PAIR, "chosen_input_ids": [1, 3], "chosen_labels": [-100, 3],
            "rejected_input_ids": [2, 3], "rejected_labels": [-100, 3],
            "reference_chosen": reference_chosen, "reference_rejected": reference_rejected}


def recipe_for(method, tmp_path, **options):
    context = cycle_context(tmp_path, task="causal-lm", start_model="unused")
    options_class = preference.KTOOptions if method == "kto" else preference.DPOOptions
    return preference.PreferenceRecipe(context, options_class(**options), method=method)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_dpo_loss_is_the_formula_and_label_smoothing_makes_it_conservative(tmp_path, smoothing):
    recipe = recipe_for("dpo", tmp_path, beta=0.1)
    batch = preference.PreferenceCollator(0)([pair_feature(-1.0, -2.0)])
    model = FixedLogits([-0.5, -3.0])  # chosen, rejected
    losses, _, _ = recipe.losses(model, batch, smoothing)
    margin = 0.1 * ((-0.5 - -1.0) - (-3.0 - -2.0))

    def log_sigmoid(value):
        return -math.log1p(math.exp(-value))

    expected = -(1 - smoothing) * log_sigmoid(margin) - smoothing * log_sigmoid(-margin)
    assert losses.tolist() == pytest.approx([expected], rel=1e-4)


def test_kto_loss_is_the_formula_with_the_kl_reference_point(tmp_path):
    recipe = recipe_for("kto", tmp_path, beta=0.5, desirable_weight=1.0, undesirable_weight=2.0)
    good = {"kind": preference.DESIRABLE, "chosen_input_ids": [1, 3], "chosen_labels": [-100, 3],
            "kl_input_ids": [1, 3], "kl_labels": [-100, 3], "reference_chosen": -1.0,
            "reference_kl": -1.0}
    bad = {"kind": preference.UNDESIRABLE, "chosen_input_ids": [2, 3],
           "chosen_labels": [-100, 3], "kl_input_ids": [2, 3], "kl_labels": [-100, 3],
           "reference_chosen": -1.0, "reference_kl": -2.0}
    batch = preference.PreferenceCollator(0)([good, bad])
    # sequences in order: good chosen, good kl, bad chosen, bad kl
    model = FixedLogits([-0.5, -0.8, -1.5, -1.0])
    losses, _, _ = recipe.losses(model, batch, 0.0)
    kl = max(0.0, ((-0.8 - -1.0) + (-1.0 - -2.0)) / 2)

    def sigmoid(value):
        return 1 / (1 + math.exp(-value))

    expected = [1 - sigmoid(0.5 * ((-0.5 - -1.0) - kl)),
                2.0 * (1 - sigmoid(0.5 * (kl - (-1.5 - -1.0))))]
    assert losses.tolist() == pytest.approx(expected, rel=1e-4)


def test_plain_examples_get_the_supervised_loss_scaled_by_sft_weight(tmp_path):
    recipe = recipe_for("dpo", tmp_path, sft_weight=0.5)
    plain = {"kind": preference.SUPERVISED, "chosen_input_ids": [1, 3],
             "chosen_labels": [-100, 3]}
    batch = preference.PreferenceCollator(0)([plain])
    model = FixedLogits([-0.7])
    losses, _, _ = recipe.losses(model, dict(batch), 0.0)
    assert losses.tolist() == pytest.approx([0.5 * 0.7], rel=1e-4)
    model.training = False  # validation: the plain loss, whatever the weight
    losses, _, _ = recipe.losses(model, dict(batch), 0.0)
    assert losses.tolist() == pytest.approx([0.7], rel=1e-4)


def test_kto_pairs_each_judged_prompt_with_another_completion():
    features = [{"kind": preference.DESIRABLE, "chosen_input_ids": [1, 2, 7, 8],
                 "chosen_labels": [-100, -100, 7, 8]},
                {"kind": preference.SUPERVISED, "chosen_input_ids": [5, 6],
                 "chosen_labels": [-100, 6]},
                {"kind": preference.UNDESIRABLE, "chosen_input_ids": [3, 9],
                 "chosen_labels": [-100, 9]}]
    preference.add_mismatched_sequences(features)
    assert features[0]["kl_input_ids"] == [1, 2, 9]
    assert features[0]["kl_labels"] == [-100, -100, 9]
    assert features[2]["kl_input_ids"] == [3, 7, 8]
    assert "kl_input_ids" not in features[1]
