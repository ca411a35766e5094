"""Runs DoubleML 0.11 on a jaxcausal data set with the same fold split (the parity reference)."""

import warnings

import doubleml
import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression


def splits(folds, n_folds):
    """DoubleML's sample splitting `[[(train, test), ...] per repetition]` from fold ids."""
    return [
        [(np.where(f != k)[0], np.where(f == k)[0]) for k in range(n_folds)]
        for f in np.asarray(folds)
    ]


def dml_data(data):
    z = None if data.z is None else list(data.z_names)
    return doubleml.DoubleMLData(data.to_pandas(), "y", list(data.t_names), list(data.x_names), z)


def logistic():
    # Newton's method to a tiny tolerance: the optimum, like jc.learners.Logistic (lbfgs stops
    # near 1e-8 relative, which would dominate the comparison).
    return LogisticRegression(penalty=None, solver="newton-cholesky", tol=1e-14, max_iter=1000)


def fit(cls, data, learners, folds, n_folds, n_rep, external=None, **kwargs):
    """Fits DoubleML's `cls` with the given fold ids and returns the fitted object."""
    # DoubleML warns about our choices (sample splitting set by hand, learner checks); the
    # comparison is what these tests assert, not DoubleML's advice.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(
            dml_data(data), *learners, n_folds=n_folds, n_rep=n_rep,
            draw_sample_splitting=False, **kwargs,
        )
        model.set_sample_splitting(splits(folds, n_folds))
        model.fit(external_predictions=external)
    return model


def linear():
    return LinearRegression()
