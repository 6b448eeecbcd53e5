"""Macro-averaged f1 (a local ``evaluate`` module, computed with scikit-learn)."""

from sklearn.metrics import f1_score

from tuneloop.plugins.metrics import averaged_score


class F1(averaged_score.AveragedScore):
    figure = "f1"
    score = staticmethod(f1_score)
    description = (
        "The harmonic mean of precision and recall, computed per label and averaged over labels "
        "with equal weight (macro), so rare labels count as much as common ones. A label never "
        "predicted scores 0, not an error."
    )
