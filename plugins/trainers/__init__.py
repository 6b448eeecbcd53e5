"""Built-in trainers: ``sequence_classification``, ``causal_lm_sft``, ``dpo`` and ``kto``.

All run the shared loop in ``common`` (on ``transformers.Trainer``): example weights and
regularizer penalties in the loss, validation each epoch or N steps, the best checkpoint kept,
figures streamed to the cycle. Importing this package imports neither torch nor transformers.
"""

from tuneloop import hookimpl
from tuneloop.plugins.trainers.causal_lm import CausalLMTrainer
from tuneloop.plugins.trainers.classification import SequenceClassificationTrainer
from tuneloop.plugins.trainers.preference import DPOTrainer, KTOTrainer


@hookimpl
def register_trainers(register):
    register(SequenceClassificationTrainer)
    register(CausalLMTrainer)
    register(DPOTrainer)
    register(KTOTrainer)
