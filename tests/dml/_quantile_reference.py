"""DoubleML's quantile models on a jaxcausal data set, with the same outer folds, and the inner
split DoubleML draws, as an `inner_folds` array for jaxcausal.

DoubleML 0.11 splits every training fold with
`train_test_split(train, test_size=0.5, random_state=42, stratify=strata[train])` and cross-fits
the preliminary propensity on the first half with `StratifiedKFold(n_folds)` (no shuffling):
both deterministic given the training rows, so `inner_folds` below replays them exactly.
"""

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split


def inner_folds(folds, strata, n_folds):
    """DoubleML's inner split as jaxcausal's `(n_rep, n_folds, n_obs)` ids."""
    folds = np.asarray(folds)
    n_rep, n = folds.shape
    out = np.full((n_rep, n_folds, n), -1, dtype=np.int32)
    for r in range(n_rep):
        for f in range(n_folds):
            train = np.where(folds[r] != f)[0]
            first, second = train_test_split(
                train, test_size=0.5, random_state=42, stratify=strata[train]
            )
            for j, (_, test) in enumerate(
                StratifiedKFold(n_splits=n_folds).split(X=first, y=strata[first])
            ):
                out[r, f, first[test]] = j
            out[r, f, second] = n_folds
    return out


def pq_strata(data):
    return np.asarray(data.t[:, 0])


def lpq_strata(data):
    # DoubleML's LPQ strata: a column d + 2 z
    return (np.asarray(data.t[:, 0]) + 2 * np.asarray(data.z[:, 0])).reshape(-1, 1)
