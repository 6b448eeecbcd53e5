"""Built-in regularizers: ``weight_decay`` (a trainer argument) and ``dropout`` (the model).

Configured under ``training.regularizers``, for example::

    regularizers:
      - {name: weight_decay, value: 0.05}
      - {name: dropout, p: 0.2}
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneloop import Options, Regularizer, hookimpl


class WeightDecay(Regularizer):
    """Decoupled weight decay (AdamW) on every weight except biases and layer norms."""

    name = "weight_decay"

    class Options(Options):
        value: float = Field(0.01, ge=0, description="decay per step, as a fraction of the weight")

    def configure(self, args: dict[str, Any]) -> None:
        args["weight_decay"] = self.options.value


class Dropout(Regularizer):
    """One dropout probability for the whole model, overriding what the checkpoint was built with.

    ``prepare`` sets every ``torch.nn.Dropout`` layer's ``p`` (what takes effect in training) and
    every dropout probability in the model's config (``hidden_dropout_prob``, ``attn_pdrop``...),
    so the saved model's config says what it was trained with.
    """

    name = "dropout"

    class Options(Options):
        p: float = Field(0.1, ge=0, lt=1, description="probability of zeroing an activation")

    def prepare(self, model: Any) -> Any:
        from torch import nn

        dropout_layers = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                          nn.FeatureAlphaDropout)
        for module in model.modules():
            if isinstance(module, dropout_layers):
                module.p = self.options.p
        config = getattr(model, "config", None)
        if config is not None:
            for key, value in config.to_dict().items():
                if is_dropout_probability(key, value):
                    setattr(config, key, self.options.p)
        return model


def is_dropout_probability(key: str, value: Any) -> bool:
    """Config keys that hold a dropout probability: ``*dropout*`` or ``*pdrop`` with a number.

    ``None`` (``classifier_dropout`` in BERT: "use the hidden dropout") is left as it is.
    """
    named_dropout = "dropout" in key or key.endswith("pdrop")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return named_dropout and is_number


@hookimpl
def register_regularizers(register):
    register(WeightDecay)
    register(Dropout)
