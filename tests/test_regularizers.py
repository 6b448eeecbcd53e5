"""The built-in regularizers: what each changes, and the options each refuses."""

from __future__ import annotations

import pydantic
import pytest

from tuneloop import Regularizer
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
    assert registry.names() == ["dropout", "weight_decay"]


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
