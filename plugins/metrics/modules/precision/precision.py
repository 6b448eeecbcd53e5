"""Macro-averaged precision (a local ``evaluate`` module, computed with scikit-learn)."""

from sklearn.metrics import precision_score

from tuneloop.plugins.metrics import averaged_score


class Precision(averaged_score.AveragedScore):
    figure = "precision"
    score = staticmethod(precision_score)
    description = (
        "Of the examples predicted as a label, the fraction that have it, computed per label and "
        "averaged over labels with equal weight (macro), so rare labels count as much as common "
        "ones. A label never predicted scores 0, not an error."
    )
