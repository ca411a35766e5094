"""Cluster-robust PLR and PLIV (one- and two-way): exact parity with DoubleML 0.11 on identical
cluster folds (estimates, standard errors, sensitivity bounds), the fold structure, errors and a
float32 run."""

import warnings

import doubleml
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
import pytest

import jaxcausal as jc

from . import _reference as ref

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

RTOL = 1e-8  # the same least-squares problems and sums on both sides
K, R = 3, 2


@pytest.fixture(scope="module")
def frame():
    data = jc.datasets.make_plr_twoway_cluster(12, 10, dim_x=4, theta=0.5, key=jr.key(0))
    df = data.to_pandas()
    z = np.asarray(data.x[:, 0]) + np.random.default_rng(0).normal(size=data.n_obs)
    df["z"] = z
    df["d"] = df["d"] + 0.5 * z
    # labels that are not codes, to check that clusters are matched by value
    df["cluster_1"] = "firm" + df["cluster_1"].astype(str)
    df["cluster_2"] = 2000 + df["cluster_2"]
    return df


def doubleml_splits(df, ccols, folds):
    """DoubleML's `all_smpls` and `all_smpls_cluster` from our per-variable folds."""
    ways, n = len(ccols), len(df)
    labels = [df[c].to_numpy() for c in ccols]
    all_smpls, all_cluster = [], []
    for r in range(folds.shape[0]):
        smpls, cl = [], []
        for cell in range(K**ways):
            fs = [(cell // K ** (ways - 1 - w)) % K for w in range(ways)]
            test, train = np.ones(n, bool), np.ones(n, bool)
            for w in range(ways):
                test &= folds[r, w] == fs[w]
                train &= folds[r, w] != fs[w]
            smpls.append((np.where(train)[0], np.where(test)[0]))
            cl.append(([np.unique(labels[w][folds[r, w] != fs[w]]) for w in range(ways)],
                       [np.unique(labels[w][folds[r, w] == fs[w]]) for w in range(ways)]))
        all_smpls.append(smpls)
        all_cluster.append(cl)
    return all_smpls, all_cluster


def their_fit(cls, df, ccols, z, folds, n_learners, external=None, **kwargs):
    x_cols = ["X1", "X2", "X3", "X4"]
    data = doubleml.DoubleMLData(df, "y", "d", x_cols, z, cluster_cols=ccols)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(data, *[ref.linear() for _ in range(n_learners)], n_folds=K,
                    n_rep=folds.shape[0], draw_sample_splitting=False, **kwargs)
        model.set_sample_splitting(*doubleml_splits(df, ccols, folds))
        model.fit(external_predictions=external)
    return model


@pytest.mark.parametrize("ways", [1, 2])
def test_cluster_plr_matches_doubleml(frame, ways):
    from .test_sensitivity import assert_analysis, assert_elements

    ccols = ["cluster_1", "cluster_2"][:ways]
    data = jc.CausalData.from_pandas(frame, y="y", t="d", x=["X1", "X2", "X3", "X4"],
                                     cluster=ccols)
    assert data.cluster_names == tuple(ccols)
    lin = jc.learners.Linear()
    res = jc.dml.PLR(lin, lin, n_folds=K, n_rep=R).fit(data, key=jr.key(0))
    folds = np.asarray(res.cluster.folds)
    # every cluster lies in one fold of its variable; the cells are the product of the folds
    for w in range(ways):
        codes = np.asarray(data.cluster[:, w])
        for r in range(R):
            per_cluster = pd.Series(folds[r, w]).groupby(codes).nunique()
            assert (per_cluster == 1).all()
            assert np.bincount(pd.Series(folds[r, w]).groupby(codes).first(), minlength=K).min() \
                >= len(np.unique(codes)) // K
    theirs = their_fit(doubleml.DoubleMLPLR, frame, ccols, None, folds, 2)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=RTOL)
    np.testing.assert_allclose(res.se, theirs.se, rtol=RTOL)
    assert_elements(res, theirs)
    assert_analysis(res, theirs, 0.05, 0.05, 1.0, 0.95, 0.3)
    with pytest.raises(ValueError, match="bootstrap with clustered data is not implemented"):
        res.bootstrap(key=jr.key(0))


@pytest.mark.parametrize("ways", [1, 2])
def test_cluster_pliv_matches_doubleml(frame, ways):
    ccols = ["cluster_1", "cluster_2"][:ways]
    data = jc.CausalData.from_pandas(frame, y="y", t="d", x=["X1", "X2", "X3", "X4"], z="z",
                                     cluster=ccols)
    lin = jc.learners.Linear()
    res = jc.dml.PLIV(lin, lin, lin, n_folds=K, n_rep=R).fit(data, key=jr.key(1))
    theirs = their_fit(doubleml.DoubleMLPLIV, frame, ccols, "z", np.asarray(res.cluster.folds), 3)
    np.testing.assert_allclose(res.theta_rep, theirs.all_coef, rtol=RTOL)
    np.testing.assert_allclose(res.se_rep, theirs.all_se, rtol=RTOL)


def test_cluster_errors(frame):
    data = jc.CausalData.from_pandas(frame, y="y", t="d", x=["X1", "X2"], cluster="cluster_1")
    lin = jc.learners.Linear()
    with pytest.raises(ValueError, match="cluster variable 'cluster_1' has 12 clusters but "
                                         "n_folds=13"):
        jc.dml.PLR(lin, lin, n_folds=13).fit(data, key=jr.key(0))
    with pytest.raises(ValueError, match="IRM does not support clustered data"):
        jc.dml.IRM(lin, jc.learners.Logistic()).fit(
            jc.CausalData(data.y, data.t[:, 0] > 0, data.x, cluster=data.cluster), key=jr.key(0))
    bad = np.tile(np.arange(data.n_obs) % K, (R, 1))  # splits clusters
    with pytest.raises(ValueError, match="folds split a cluster of cluster variable 0"):
        jc.dml.PLR(lin, lin, n_folds=K, n_rep=R).fit(data, key=jr.key(0), folds=bad)
    with pytest.raises(ValueError, match=r"cluster must have shape \(n_obs,\) or \(n_obs, c\)"):
        jc.CausalData(data.y, data.t, data.x, cluster=np.zeros((data.n_obs, 3)))
    with pytest.raises(ValueError, match="cluster names unknown column"):
        jc.CausalData.from_pandas(frame, y="y", t="d", x=["X1"], cluster="firm")


def test_cluster_simulate_and_float32():
    # simulate draws clustered data inside the compiled study (cluster ids are traced codes)
    lin = jc.learners.Linear()
    # the configuration and shapes of the parity tests: the eager fit below reuses their program
    est = jc.dml.PLR(lin, lin, n_folds=K, n_rep=R)

    def dgp(k):
        return jc.datasets.make_plr_twoway_cluster(12, 10, dim_x=4, key=k)

    rows = jc.dml.simulate(est, dgp, key=jr.key(0), n_sims=2, truth=0.5, summarize=False)
    assert rows["ok"].all()
    # the traced fit (cluster ids traced, not factorised) equals the eager fit of the same data
    k_data, k_fit = jr.split(jr.split(jr.key(0), 2)[0])
    eager = est.fit(dgp(k_data), key=k_fit)
    np.testing.assert_allclose(rows["theta"].iloc[0], eager.theta[0], rtol=1e-10)
    np.testing.assert_allclose(rows["se"].iloc[0], eager.se[0], rtol=1e-10)
    # float32 on badly scaled data (y ~ 1e5, covariates 1e-3 .. 1e5) with float32 external
    # predictions: the cluster-robust theta and se agree with DoubleML's float64 values for the
    # same predictions and folds to 1e-4 relative
    data = jc.datasets.make_plr_twoway_cluster(12, 10, dim_x=4, key=jr.key(3))
    scale = np.array([1e-3, 1.0, 1e3, 1e5])
    rng = np.random.default_rng(1)
    y, x = 1e5 * np.asarray(data.y), np.asarray(data.x) * scale
    ext = {"ml_l": y + 1e5 * rng.normal(size=data.n_obs),
           "ml_m": np.asarray(data.t[:, 0]) + rng.normal(size=data.n_obs)}
    with jax.enable_x64(False):
        f32 = jc.CausalData(y.astype(np.float32), np.asarray(data.t, np.float32),
                            x.astype(np.float32), cluster=data.cluster)
        res = jc.dml.PLR(None, None, n_folds=K).fit(
            f32, key=jr.key(0), external_predictions={k: v.astype(np.float32)
                                                       for k, v in ext.items()})
        assert res.theta_rep.dtype == jnp.float32
    df = pd.DataFrame({"y": y, "d": np.asarray(data.t[:, 0]), "cluster_1":
                       np.asarray(data.cluster[:, 0]), "cluster_2": np.asarray(data.cluster[:, 1]),
                       **{f"X{i + 1}": x[:, i] for i in range(4)}})
    theirs = their_fit(doubleml.DoubleMLPLR, df, ["cluster_1", "cluster_2"], None,
                       np.asarray(res.cluster.folds), 2,
                       external={"d": {k: v[:, None] for k, v in ext.items()}})
    np.testing.assert_allclose(res.theta, theirs.coef, rtol=1e-4)
    np.testing.assert_allclose(res.se, theirs.se, rtol=1e-4)


@pytest.mark.slow
def test_cluster_coverage_study():
    # 200 two-way clustered panels (30 x 25): the cluster-robust 95% intervals cover theta = 0.5
    # (0.90 is about three binomial standard errors below 0.95 plus the small-G downward bias
    # of cluster variances), while the naive intervals of the same fits are far too narrow.
    lin = jc.learners.Linear()

    def clustered(k):
        return jc.datasets.make_plr_twoway_cluster(30, 25, dim_x=4, key=k)

    def naive(k):
        d = clustered(k)
        return jc.CausalData(d.y, d.t, d.x)

    est = jc.dml.PLR(lin, lin, n_folds=3)
    robust = jc.dml.simulate(est, clustered, key=jr.key(0), n_sims=200, truth=0.5)
    plain = jc.dml.simulate(est, naive, key=jr.key(0), n_sims=200, truth=0.5)
    assert float(robust["coverage"].iloc[0]) > 0.90
    assert float(plain["coverage"].iloc[0]) < 0.75
