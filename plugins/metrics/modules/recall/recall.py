"""Macro-averaged recall (a local ``evaluate`` module, computed with scikit-learn)."""

from sklearn.metrics import recall_score

from tuneloop.plugins.metrics import averaged_score


class Recall(averaged_score.AveragedScore):
    figure = "recall"
    score = staticmethod(recall_score)
    description = (
        "Of the examples that have a label, the fraction predicted as it, computed per label and "
        "averaged over labels with equal weight (macro), so rare labels count as much as common "
        "ones. A label never predicted scores 0, not an error."
    )
