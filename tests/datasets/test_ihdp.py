import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcausal as jc


def _all(rep):
    cat = lambda a, b: np.concatenate([np.asarray(a), np.asarray(b)])  # noqa: E731
    return (cat(rep.train.t[:, 0], rep.test.t[:, 0]), cat(rep.tau_train, rep.tau_test),
            cat(rep.mu0_train, rep.mu0_test))


def test_ihdp_generator_facts(key):
    rep = jc.datasets.ihdp(3, key=key)
    t, tau, mu0 = _all(rep)
    assert rep.train.n_obs + rep.test.n_obs == 747
    assert rep.test.n_obs == 75
    assert t.sum() == 139
    assert rep.train.n_features == 25 and rep.train.x_names[:2] == ("bw", "b.head")
    # omega is chosen so that the average effect on the treated is exactly 4.
    assert tau[t == 1].mean() == pytest.approx(4.0, abs=1e-9)
    assert (mu0 > 0).all()  # exp of a linear index
    # Continuous covariates are standardised over the 747 units; the binary ones stay 0/1.
    x = np.concatenate([rep.train.x, rep.test.x])
    np.testing.assert_allclose(x[:, :6].mean(0), 0.0, atol=1e-10)
    np.testing.assert_allclose(x[:, :6].std(0), 1.0, atol=1e-10)
    assert np.isin(x[:, 6:], (0.0, 1.0)).all()
    # The factual outcome is the potential outcome of the received treatment plus N(0, 1) noise.
    resid = np.asarray(rep.train.y) - np.where(np.asarray(rep.train.t[:, 0]) == 1,
                                               rep.mu1_train, rep.mu0_train)
    assert abs(resid.std() - 1.0) < 0.1


def test_ihdp_replications_are_reproducible_and_batched(key):
    a = jc.datasets.ihdp(1, key=key)
    b = jc.datasets.ihdp(1, key=key)
    c = jc.datasets.ihdp(2, key=key)
    np.testing.assert_array_equal(a.train.y, b.train.y)
    assert not np.allclose(a.tau_train[:10], c.tau_train[:10])
    stacked = jc.datasets.ihdp_replications(3, key=key)
    assert stacked.train.y.shape == (3, 672)
    np.testing.assert_allclose(stacked.train.y[1], a.train.y, rtol=1e-12)
    assert int(jnp.sum(stacked.is_test[2])) == 75
    assert jax.tree.structure(stacked) == jax.tree.structure(a)


def test_ihdp_errors(key):
    with pytest.raises(ValueError, match="n_test must be between 1 and 746"):
        jc.datasets.ihdp(0, key=key, n_test=0)
    with pytest.raises(ValueError, match="n must be at least 1"):
        jc.datasets.ihdp_replications(0, key=key)
