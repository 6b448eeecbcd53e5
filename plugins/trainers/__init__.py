"""Built-in trainers: ``sequence_classification`` and ``causal_lm_sft``.

Both run the shared loop in ``common`` (on ``transformers.Trainer``): example weights and
regularizer penalties in the loss, validation each epoch or N steps, the best checkpoint kept,
figures streamed to the cycle. Importing this package imports neither torch nor transformers.
"""

from tuneloop import hookimpl
from tuneloop.plugins.trainers.causal_lm import CausalLMTrainer
from tuneloop.plugins.trainers.classification import SequenceClassificationTrainer


@hookimpl
def register_trainers(register):
    register(SequenceClassificationTrainer)
    register(CausalLMTrainer)
