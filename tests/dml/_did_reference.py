"""DoubleML 0.11's DID models on jaxcausal data with the same fold split (the parity reference)."""

import warnings

import doubleml
import numpy as np

from . import _reference as ref


def did_data(data):
    """`DoubleMLDIDData` from a `CausalData` (with its period column for cross-sections)."""
    t_col = None if data.time is None else data.time_name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DoubleMLDIDData is deprecated in 0.11
        return doubleml.DoubleMLDIDData(
            data.to_pandas(), data.y_name, list(data.t_names), list(data.x_names), t_col=t_col
        )


def fit_did(cls, data, learners, folds, n_folds, n_rep, external=None, **kwargs):
    """Fits `doubleml.DoubleMLDID` or `DoubleMLDIDCS` on the given fold ids."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation of DoubleMLDID(CS), learner advice
        model = cls(did_data(data), *learners, n_folds=n_folds, n_rep=n_rep,
                    draw_sample_splitting=False, **kwargs)
        model.set_sample_splitting(ref.splits(folds, n_folds))
        model.fit(external_predictions=external)
    return model


def panel_data(panel):
    """`DoubleMLPanelData` from a `PanelData` (long format; never-treated units have g = inf)."""
    return doubleml.data.DoubleMLPanelData(
        panel.to_pandas(), panel.y_name, panel.g_name, panel.time_name, panel.id_name,
        list(panel.x_names),
    )


def fit_multi(panel, ml_g, ml_m, folds, n_folds, n_rep, external=None, **kwargs):
    """Fits `DoubleMLDIDMulti` with every cell's split set to our unit folds restricted to the
    cell's units (DoubleML keeps a cell's units in the order of their ids, as we do)."""
    folds = np.asarray(folds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = doubleml.did.DoubleMLDIDMulti(
            panel_data(panel), ml_g, ml_m, n_folds=n_folds, n_rep=n_rep, **kwargs
        )
        for cell in model.modellist:
            cell.set_sample_splitting(ref.splits(folds[:, cell.id_positions], n_folds))
        model.fit(external_predictions=external)
    return model


def scale_columns(x):
    """Covariates scaled from 1e-3 to 1e5 (the badly scaled float32 checks)."""
    scales = np.logspace(-3, 5, x.shape[-1])
    return np.asarray(x) * scales
