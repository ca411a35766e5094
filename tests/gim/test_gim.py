"""GIM: exact likelihoods against dense Gaussians and quadrature, recovery of targets on a small
Hill suite, vmap == loop, no recompilation, the posterior, baselines and bad input."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

import jaxcausal as jc
from jaxcausal.gim._causal import LinearParams
from jaxcausal.gim._objective import (
    Heads,
    exact_target_loglik,
    mc_target_loglik,
    node_loglik,
    residual_sums,
    shift_marginal,
)

SMALL = dict(d=5, n_drugs=16, n_new_drugs=6, n_cells=30, n_test_cells=40, n_control=200)
GIM = jc.gim.GIM(max_steps=400, width=16, calibration_folds=None)


@pytest.fixture(scope="module")
def suite():
    return jc.datasets.hill_suite(jr.key(0), **SMALL)


@pytest.fixture(scope="module")
def fitted(suite):
    return GIM.fit(suite.train.data, key=jr.key(1))


def _cyclic(d=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=0.4, size=(d, d)) * (1 - np.eye(d))
    w[0, 1], w[1, 0] = 0.5, -0.6  # a 2-cycle
    return LinearParams(weights=jnp.asarray(w), bias=jnp.asarray(rng.normal(size=d)),
                        log_scale=jnp.asarray(np.log(rng.uniform(0.5, 1.5, d)))), w


def test_linear_likelihood_is_the_dense_gaussian_even_with_a_cycle(getkey):
    params, w = _cyclic()
    d = w.shape[0]
    b, sigma = np.asarray(params.bias), np.exp(np.asarray(params.log_scale))
    delta = np.array([0.0, 1.3, 0.0, -0.4])
    a = np.linalg.inv(np.eye(d) - w)  # row form: x = (b + delta + eps) A
    x = (b + delta + sigma * np.asarray(jr.normal(getkey(), (9, d)))) @ a
    want = multivariate_normal((b + delta) @ a, a.T @ np.diag(sigma**2) @ a).logpdf(x).sum()
    s1, s2 = residual_sums(params, jnp.asarray(x), jnp.ones(9, bool))
    got = jnp.sum(node_loglik(9.0, s1, s2, jnp.asarray(delta), jnp.asarray(sigma)))
    got = got + 9 * params.log_det()
    assert float(got) == pytest.approx(want, rel=1e-10)
    # Solving x = x W + u inverts the residual map.
    u = jnp.asarray(np.random.default_rng(1).normal(size=(3, d)))
    np.testing.assert_allclose(params.residuals(params.solve(u)), u - params.bias[None, :],
                               atol=1e-12)


def test_shift_marginal_and_target_sum_against_quadrature():
    n, s1, s2, sigma, mu, s, pi = 7.0, 4.2, 9.1, 0.8, 0.3, 0.9, 0.3
    grid = np.linspace(-12, 12, 200_001)
    ll = np.asarray(node_loglik(n, s1, s2, grid, sigma))
    prior = np.exp(-0.5 * ((grid - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))
    integral = np.trapezoid(np.exp(ll) * prior, grid)
    assert float(shift_marginal(n, s1, s2, mu, s, sigma)) == pytest.approx(np.log(integral),
                                                                            rel=1e-8)
    heads = Heads(*(jnp.asarray([v]) for v in (np.log(pi / (1 - pi)), mu, np.log(s), 0.0)))
    exact = exact_target_loglik(n, jnp.asarray([s1]), jnp.asarray([s2]), sigma, heads)
    want = np.log((1 - pi) * np.exp(float(node_loglik(n, s1, s2, 0.0, sigma))) + pi * integral)
    assert float(exact[0]) == pytest.approx(want, rel=1e-8)
    # The concrete Monte Carlo estimator tends to it at a low temperature with many samples
    # (20000 draws: Monte Carlo sd of the log-mean ~0.02 here).
    mc = mc_target_loglik(n, jnp.asarray([s1]), jnp.asarray([s2]), sigma, heads, jr.key(0),
                          20_000, 0.01)
    assert float(mc[0]) == pytest.approx(want, abs=0.05)


def test_recovers_targets_and_beats_control(suite, fitted):
    # Targets of the training perturbations are latent; they are recovered from the cells
    # (AUROC ~0.95-1 on this suite; 0.9 leaves room for seeds).
    probs = fitted.target_probs(suite.train.features)
    assert float(jc.metrics.auroc(suite.train.targets, probs)) >= 0.9
    sp = suite.partial
    truth = np.stack([sp.x[sp.context == k].mean(0) for k in range(len(sp.features))])
    err = jc.metrics.mean_squared_error
    gim_err = np.mean([float(err(m[None], t[None])) for m, t in zip(fitted.mean(sp.features),
                                                                     truth)])
    ctrl = jc.gim.Control().fit(suite.train.data).mean(sp.features)
    ctrl_err = np.mean([float(err(m[None], t[None])) for m, t in zip(ctrl, truth)])
    assert gim_err < 0.6 * ctrl_err
    draws = fitted.sample(sp.features[:3], 50, key=jr.key(2))
    assert draws.shape == (3, 50, 5) and np.all(np.isfinite(draws))
    shift = fitted.shift(sp.features[:3])
    assert shift.mean.shape == (3, 5) and np.all(shift.scale > 0)


def test_scm_is_the_learned_model_in_data_units(fitted):
    scm = fitted.scm
    assert isinstance(scm, jc.scm.SCM) and set(scm.names) == set(fitted.names)
    draws = scm.sample(20_000, key=jr.key(3))
    got = np.array([float(jnp.mean(draws[v])) for v in fitted.names])
    c = fitted.causal
    want = fitted.x_loc + fitted.x_scale * c.solve(c.bias[None, :])[0]
    # Edges below the threshold are dropped (tiny effect); Monte Carlo sd ~0.01 of the scale.
    np.testing.assert_allclose(got, want, atol=0.05 * float(jnp.max(fitted.x_scale)))


def test_vmapped_seeds_equal_one_by_one_and_no_recompilation(suite):
    gim = jc.gim.GIM(max_steps=30, width=8, calibration_folds=None)
    data = suite.train.data
    keys = jr.split(jr.key(5), 2)
    # Two seeds of one setting, as a sweep over target_penalty (so both calls share a compile).
    sweep = jc.gim.GIM(max_steps=30, width=8, calibration_folds=None,
                       target_penalty=jnp.array([2.0, 2.0]))
    batch = jc.gim.fit_batch(sweep, data, keys=keys)
    for i in range(2):
        one = gim.fit(data, key=keys[i])
        np.testing.assert_allclose(batch.member(i).target_probs(data.features),
                                   one.target_probs(data.features), rtol=1e-7, atol=1e-10)
    before = jc.gim.count_fit_traces()
    other = jc.gim.PerturbationData(data.x + 0.1, data.context, data.features)
    gim.fit(other, key=jr.key(9))
    assert jc.gim.count_fit_traces() == before
    # A sweep over a hyperparameter is one vmapped call too.
    sweep = jc.gim.GIM(max_steps=30, width=8, calibration_folds=None,
                       target_penalty=jnp.array([0.5, 4.0]))
    fits = jc.gim.fit_batch(sweep, data, keys=keys)
    assert jc.gim.count_fit_traces() == before  # reuses the first batched compile
    total = [float(fits.member(i).target_probs(data.features).sum()) for i in range(2)]
    assert total[1] < total[0]  # a higher cost per target gives fewer targets
    # a member carries its own setting (so that jc.gim.calibrate can refit it)
    assert fits.member(1).config.target_penalty.shape == ()
    assert float(fits.member(1).config.target_penalty) == 4.0


def test_posterior_sharpens_and_starts_at_the_prior(suite, fitted):
    sp = suite.full
    k = int(np.argmax(sp.targets.sum(1)))
    cells = sp.x[sp.context == k]
    prior = fitted.posterior(sp.features[k], cells[:0])
    np.testing.assert_allclose(prior.target_probs, fitted.target_probs(sp.features[k])[0],
                               rtol=1e-12)
    sds = [float(jnp.max(fitted.posterior(sp.features[k], cells[:m]).strength_sd))
           for m in (0, 5, 40)]
    assert sds[0] > sds[1] > sds[2]
    post = fitted.posterior(sp.features[k], cells[:10])
    assert post.predictive(30, key=jr.key(5)).shape == (30, 5)
    lo, hi = post.interval(0.9)
    assert np.all(lo < hi)


@pytest.mark.slow
def test_posterior_exact_matches_nuts(suite, fitted):
    sp = suite.full
    k = int(np.argmax(sp.targets.sum(1)))
    cells = sp.x[sp.context == k]
    post = fitted.posterior(sp.features[k], cells[:10])
    nuts = fitted.posterior(sp.features[k], cells[:10], key=jr.key(4),
                            method=jc.scm.NUTS(200, 400, max_tree_depth=4))
    # NUTS with 400 draws: target probabilities within 0.05, shift means within 0.2 sd.
    np.testing.assert_allclose(nuts.target_probs, post.target_probs, atol=0.05)
    on = np.asarray(post.target_probs) > 0.5
    np.testing.assert_allclose(np.asarray(nuts.strength_mean)[on],
                               np.asarray(post.strength_mean)[on],
                               atol=0.2 * float(np.max(np.asarray(post.strength_sd)[on])))


def test_calibration_covers_shifts_of_new_drugs(suite, fitted):
    # Held-out drugs (all doses of a drug in one fold): the extra shift scale makes the 90%
    # intervals from 10 cells cover the true shifts of new drugs (~0.9; 0.75 leaves room for the
    # ~35 target pairs of this small suite), where the uncalibrated ones are overconfident.
    cal = jc.gim.calibrate(fitted, suite.train.data, key=jr.key(11), groups=suite.train.drug,
                           n_folds=3)
    assert float(cal.shift_floor) > 0.0

    def coverage(model):
        sp, hits = suite.full, []
        for k in range(len(sp.features)):
            lo, hi = model.posterior(sp.features[k], sp.x[sp.context == k][:10]).interval(0.9)
            hits += [lo[j] <= sp.shifts[k, j] <= hi[j] for j in np.flatnonzero(sp.targets[k])]
        return np.mean(hits)

    assert coverage(cal) >= 0.75 and coverage(cal) > coverage(fitted)
    with pytest.raises(ValueError, match="groups must have one id per perturbation"):
        jc.gim.calibrate(fitted, suite.train.data, key=jr.key(0), groups=[0, 1])


def test_baselines_share_the_interface(suite):
    data, sp = suite.train.data, suite.partial
    un = jc.gim.Unstructured(max_steps=100, width=16).fit(data, key=jr.key(6))
    two = jc.gim.TwoStage(max_steps=100, width=16).fit(data, key=jr.key(7))
    for model in (un, two, jc.gim.Control().fit(data)):
        assert model.mean(sp.features).shape == (len(sp.features), 5)
        assert model.sample(sp.features[:2], 7, key=jr.key(8)).shape == (2, 7, 5)
    assert two.target_probs(sp.features).shape == (len(sp.features), 5)


def test_mlp_scm_fits_and_converts(getkey):
    suite = jc.datasets.hill_suite(jr.key(3), linear=False, **SMALL)
    gim = jc.gim.GIM(causal=jc.gim.MLPSCM(width=8), max_steps=300, width=16,
                     calibration_folds=None)
    fitted = gim.fit(
        suite.train.data, key=getkey())
    probs = fitted.target_probs(suite.train.features)
    # Nonlinear suite, short training: targets still clearly ranked (AUROC ~0.9).
    assert float(jc.metrics.auroc(suite.train.targets, probs)) >= 0.8
    scm = fitted.scm
    assert isinstance(scm.program, jc.scm.AdditiveNoiseMLPProgram)
    assert np.all(np.isfinite(np.asarray(scm.sample(10, key=getkey())["x0"])))


def test_bad_input(suite, fitted):
    x, ctx, f = suite.train.x, suite.train.context, suite.train.features
    PD = jc.gim.PerturbationData
    with pytest.raises(ValueError, match=r"context ids must be in \[-1, 64\)"):
        PD(x, np.where(ctx == 3, 99, ctx), f)
    with pytest.raises(ValueError, match=r"perturbations \[3\] have no rows"):
        PD(x, np.where(ctx == 3, -1, ctx), f)
    with pytest.raises(ValueError, match="no control rows"):
        PD(x[ctx >= 0], ctx[ctx >= 0], f)
    with pytest.raises(ValueError, match="features contains NaN"):
        PD(x, ctx, np.where(np.arange(f.shape[1]) == 0, np.nan, f))
    with pytest.raises(ValueError, match=r"context ids must be in \[-1, 63\)"):
        PD(x, ctx, f[:-1])  # a features matrix with too few rows
    with pytest.raises(ValueError, match="x contains NaN"):
        PD(np.where(np.arange(5) == 2, np.nan, x), ctx, f)
    with pytest.raises(ValueError, match=r"features must have shape \(m, 5\)"):
        fitted.target_probs(f[:, :3])
    cells = pd.DataFrame(x[:40], columns=list("abcde")).assign(cond=["c"] * 20 + ["k"] * 20)
    conds = pd.DataFrame({"dose": [1.0]}, index=["k"])
    with pytest.raises(ValueError, match=r"variables \['z'\] are not columns"):
        PD.from_pandas(cells, conds, context="cond", control="c", variables=["a", "z"],
                       features=["dose"])
    data = PD.from_pandas(cells, conds, context="cond", control="c", variables=list("abcde"),
                          features=["dose"])
    assert data.n_perturbations == 1 and data.names == tuple("abcde")
    with pytest.raises(TypeError, match="causal"):
        jc.gim.GIM(causal=jc.scm.LinearGaussian())


def test_masked_energy_is_the_energy_distance_of_the_unmasked_rows(getkey):
    from jaxcausal.gim._objective import masked_energy

    sim = jr.normal(getkey(), (7, 3))
    x = jr.normal(getkey(), (9, 3)) + 0.5
    mask = jnp.arange(9) < 6
    want = jc.metrics.energy_distance(sim, x[:6])
    assert float(masked_energy(sim, x, mask)) == pytest.approx(float(want), rel=1e-12)


def test_energy_objective_recovers_targets(suite):
    # The sample-based objective (for models without a likelihood) on the linear suite: noisier
    # than the exact likelihood (train AUROC ~0.94 at 400 steps against ~0.98), still clearly
    # ranking the targets and beating the control distribution on new doses.
    gim = jc.gim.GIM(objective="energy", max_steps=300, width=16, calibration_folds=None)
    assert gim.resolved_objective == "energy"
    fitted = gim.fit(suite.train.data, key=jr.key(1))
    probs = fitted.target_probs(suite.train.features)
    assert float(jc.metrics.auroc(suite.train.targets, probs)) >= 0.85
    sp = suite.partial
    truth = np.stack([sp.x[sp.context == k].mean(0) for k in range(len(sp.features))])
    ctrl = np.asarray(jc.gim.Control().fit(suite.train.data).mean(sp.features))
    gim_err = np.mean((np.asarray(fitted.mean(sp.features)) - truth) ** 2)
    assert gim_err < 0.8 * np.mean((ctrl - truth) ** 2)


def test_auto_objective_uses_energy_only_without_a_likelihood():
    auto = jc.gim.GIM(causal=jc.gim.MLPSCM(acyclic=False))
    assert auto.resolved_objective == "energy"
    assert jc.gim.GIM(causal=jc.gim.MLPSCM()).resolved_objective == "likelihood"
    # a cyclic linear model keeps its exact likelihood (log|det(I - W)| is in it)
    assert jc.gim.GIM(causal=jc.gim.LinearSCM(acyclic=False)).resolved_objective == "likelihood"
    with pytest.raises(ValueError, match="objective must be"):
        jc.gim.GIM(objective="mmd")
    # the cyclic MLP model trains (compiled) on the energy distance
    suite = jc.datasets.hill_suite(jr.key(4), linear=False, **SMALL)
    gim = jc.gim.GIM(causal=jc.gim.MLPSCM(width=4, acyclic=False), max_steps=20, width=8,
                     calibration_folds=None)
    fitted = gim.fit(suite.train.data, key=jr.key(0))
    assert np.all(np.isfinite(np.asarray(fitted.train_loss)))
    assert np.all(np.isfinite(np.asarray(fitted.target_probs(suite.full.features))))
