"""First answers (#13): cheap imports, the persistent compilation cache, progress without host
callbacks, and compiled programs that are reused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.extend.core
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpyro.distributions as dist
import pytest

import jaxcausal as jc
from jaxcausal import _cache

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, env: dict | None = None, stderr: bool = False):
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v != ""}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (proc.stdout, proc.stderr) if stderr else proc.stdout


def test_import_and_cli_answers_do_not_import_jax():
    out = _python(
        "import sys, io, contextlib\n"
        "import jaxcausal as jc\n"
        "from jaxcausal.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['version'])\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('jax', 'numpy', 'pandas', 'equinox') if m in sys.modules))\n"
        "jc.learners.MLP\n"
        "print('flax' in sys.modules)\n"
        "jc.learners.FlaxLearner\n"
        "print('flax' in sys.modules)\n"
    )
    assert out.split("\n")[:3] == ["[]", "False", "True"]


def test_default_cache_directory_and_switch(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXCAUSAL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.default_cache_dir() == tmp_path / "xdg" / "jaxcausal"
    monkeypatch.setenv("JAXCAUSAL_CACHE_DIR", str(tmp_path / "mine"))
    assert _cache.default_cache_dir() == tmp_path / "mine"
    for off in ("0", "false", "OFF"):
        monkeypatch.setenv("JAXCAUSAL_CACHE", off)
        assert _cache.cache_disabled()
        # Off: the default cache leaves JAX alone (the test suite runs with it off).
        assert jc.enable_compilation_cache() is None
        assert _cache.use_default_cache() is None
    assert jax.config.jax_compilation_cache_dir is None
    assert not (tmp_path / "mine").exists()


SCRIPT = """
import json, jax, jax.monitoring as mon, numpy as np
import jaxcausal as jc
hits = []
mon.register_event_listener(lambda e, **k: hits.append(e) if e.endswith("cache_hits") else None)
path = jc.enable_compilation_cache()
settings = [jax.config.jax_persistent_cache_min_compile_time_secs,
            jax.config.jax_compilation_cache_max_size]
# A tiny fit compiles in well under the 0.05 s threshold on an idle machine: store everything here.
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
rng = np.random.default_rng(0)
x = rng.normal(size=(24, 2))
t = (np.arange(24) % 2).astype(float)
data = jc.CausalData(y=x[:, 0] + 2.0 * t + rng.normal(size=24), t=t, x=x)
fitted = jc.te.OLS().fit(data, key=jax.random.key(1))
ate = float(fitted.ate(data.x))
print(json.dumps({"path": str(path), "hits": len(hits), "ate": ate, "settings": settings}))
"""


def test_a_second_process_loads_compiled_programs_from_the_cache(tmp_path):
    # Two small child processes (each mostly `import jaxcausal` and one tiny OLS fit): the second
    # loads the first's programs, among them the TE fit (checked eagerly, so free of host
    # callbacks, which JAX never stores). JAX settings that a CI machine may carry in its
    # environment (a cache switched off, another directory) are overridden for the children, and
    # JAX is asked to explain every program it does not store.
    cache = tmp_path / "cache"
    env = {"JAXCAUSAL_CACHE": "1", "JAXCAUSAL_CACHE_DIR": str(cache),
           "JAX_ENABLE_COMPILATION_CACHE": "true", "JAX_COMPILATION_CACHE_DIR": "",
           "JAX_EXPLAIN_CACHE_MISSES": "true"}
    first_out, first_err = _python(SCRIPT, env, stderr=True)
    first = json.loads(first_out.strip().splitlines()[-1])
    assert first["path"] == str(cache)
    assert first["settings"] == [_cache.MIN_COMPILE_TIME_S, _cache.MAX_SIZE_BYTES]
    # No program of the fit is refused for holding a host callback, and the cache works in this
    # environment (without `filelock`, JAX fails every read and write of a size-capped cache).
    assert "host callbacks" not in first_err, first_err[-3000:]
    assert "Error reading persistent compilation cache" not in first_err, first_err[-3000:]
    assert "Error writing persistent compilation cache" not in first_err, first_err[-3000:]
    written = sorted(f.name for f in cache.iterdir()) if cache.exists() else []
    assert any("_fit_ols" in name for name in written), (written, first_err[-3000:])
    second = json.loads(_python(SCRIPT, env).strip().splitlines()[-1])
    assert first["hits"] == 0 and second["hits"] > 0
    assert second["ate"] == first["ate"]


def _callbacks(jaxpr) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        count += "callback" in eqn.primitive.name
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            count += _callbacks(sub)
    return count


def _small_te_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 3))
    t = (rng.uniform(size=30) < 0.5).astype(float)
    return jc.CausalData(y=x @ np.array([1.0, -0.5, 0.2]) + t + rng.normal(size=30), t=t, x=x)


def test_te_fits_on_checked_data_hold_no_host_callback():
    # A program with a host callback is never written to the persistent cache by JAX: fits whose
    # inputs were checked eagerly compile without the traced checks.
    from jaxcausal.te._baselines import _fit_ols

    data = _small_te_data()

    def arrays(checked, interactions):
        def fn(d):
            fitted = _fit_ols(jc.te.OLS(interactions=interactions), d, checked=checked)
            return eqx.filter(fitted, eqx.is_array)

        return jax.make_jaxpr(fn)(data).jaxpr

    for interactions in (False, True):
        assert _callbacks(arrays(True, interactions)) == 0
        assert _callbacks(arrays(False, interactions)) > 0
        # the unchecked path (traced data) gives the same fit
        eager = jc.te.OLS(interactions=interactions).fit(data, key=jr.key(1))
        traced = _fit_ols(jc.te.OLS(interactions=interactions), data, checked=False)
        for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(traced)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="binary"):
        jc.te.OLS().fit(eqx.tree_at(lambda d: d.t, data, data.t * 2.0), key=jr.key(1))


def _plr_dgp(k):
    return jc.datasets.make_plr_CCDDHNR2018(n_obs=60, dim_x=3, key=k), 0.5


def test_simulate_says_how_many_fits_and_progress_does_not_change_results(capsys):
    est = jc.dml.PLR(jc.learners.Linear(), jc.learners.Linear(), n_folds=2)
    quiet = jc.dml.simulate(est, _plr_dgp, key=jr.key(3), n_sims=3, summarize=False,
                            progress=False)
    assert capsys.readouterr().err == ""
    shown = jc.dml.simulate(est, _plr_dgp, key=jr.key(3), n_sims=3, summarize=False)
    err = capsys.readouterr().err
    assert "3 replications of PLR on 60 rows, 4 nuisance fits each" in err
    assert "12 fits in all" in err and "simulate" in err
    np.testing.assert_array_equal(quiet["theta"], shown["theta"])


def test_fit_batch_progress_does_not_change_results(capsys):
    sets = [_small_te_data(seed) for seed in range(3)]
    stacked = jc.CausalData.stack(sets)
    quiet = jc.te.fit_batch(jc.te.OLS(), stacked, key=jr.key(1), progress=False)
    assert capsys.readouterr().err == ""
    shown = jc.te.fit_batch(jc.te.OLS(), stacked, key=jr.key(1))
    assert "fit_batch" in capsys.readouterr().err
    for a, b in zip(jax.tree.leaves(quiet), jax.tree.leaves(shown)):
        np.testing.assert_array_equal(a, b)
    # copy r is the fit on data set r
    for r, one in enumerate(sets):
        alone = jc.te.OLS().fit(one, key=jr.key(1))
        for a, b in zip(jax.tree.leaves(shown), jax.tree.leaves(alone)):
            np.testing.assert_allclose(a[r], b, rtol=1e-10, atol=1e-12)


def test_chunked_map_pads_the_last_chunk(monkeypatch, capsys):
    from jaxcausal import _progress

    monkeypatch.setattr(_progress, "TARGET_CHUNKS", 2)  # 5 elements: chunks of 3, the last padded
    out = _progress.chunked_map(lambda k: jnp.sum(jr.normal(k, (4,))), jr.split(jr.key(0), 5),
                                batch_size=1, mesh=None, progress=True, desc="t", unit="x")
    plain = jax.vmap(lambda k: jnp.sum(jr.normal(k, (4,))))(jr.split(jr.key(0), 5))
    np.testing.assert_allclose(out, plain, rtol=1e-12)
    assert out.shape == (5,)


def _scaled(s, d):
    return dist.Normal(d.loc, s * d.scale)


def test_soft_with_array_parameters_compiles_once(key):
    from jaxcausal.scm._scm import count_sample_traces

    from .scm._models import linear_scm

    scm, _ = linear_scm(11)
    half = scm.soft({"x2": eqx.Partial(_scaled, jnp.asarray(0.5))}).sample(40, key=key)["x2"]
    before = count_sample_traces()
    low, high = (scm.soft({"x2": eqx.Partial(_scaled, jnp.asarray(s))}).sample(40, key=key)["x2"]
                 for s in (0.1, 2.0))
    assert count_sample_traces() == before
    # Same noise, traced scale s: x2 = mean(parents) + s * sd * eps is linear in s, and s = 1 is
    # the unintervened SCM (the same key draws the same noise).
    slope = (high - low) / 1.9
    np.testing.assert_allclose(low + 0.4 * slope, half, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(low + 0.9 * slope, scm.sample(40, key=key)["x2"], rtol=1e-10,
                               atol=1e-12)
    assert float(jnp.std(slope)) > 0.1


def test_fresh_noise_blocks_match_one_call_and_single_samples(key):
    from .scm._models import linear_scm

    scm, _ = linear_scm(7)
    values = jnp.array([-1.0, 0.5, jnp.nan, 2.0, 1.0])
    whole = jc.scm.interventional_samples(scm, {"x2": values}, 30, key=key)
    blocks = jc.scm.interventional_samples(scm, {"x2": values}, 30, key=key, chunk=2)
    for v in whole:
        np.testing.assert_allclose(blocks[v], whole[v], rtol=1e-12)
    single = scm.do({"x2": values[3]}).sample(30, key=jr.split(key, 5)[3])
    np.testing.assert_allclose(whole["x4"][3], single["x4"], rtol=1e-12)


def test_scm_fit_and_do_on_host_data_compile_only_the_fit():
    """A one-off `fit` + `do` on NumPy data compiles the least-squares program and nothing else:
    the stacking, the constant-column check and the parameter initialisation run on the host
    (eager `jnp` operations compiled about 20 small programs, 0.3-0.4 s, in every new process)."""
    _, err = _python(
        "import sys, numpy as np, jax\n"
        "import jaxcausal as jc\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.normal(size=(500, 3)).cumsum(axis=1)\n"
        "data = {v: x[:, j] for j, v in enumerate('abc')}\n"
        "adjacency = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]])\n"
        "jax.config.update('jax_log_compiles', True)\n"
        "print('=== start', file=sys.stderr)\n"
        "scm = jc.scm.fit(jc.scm.SCM.from_graph(adjacency, list('abc')), data)\n"
        "scm.do({'a': 2.0})\n"
        "print('=== end', file=sys.stderr)\n",
        env={"JAXCAUSAL_CACHE": "0"},
        stderr=True,
    )
    window = err.split("=== start")[1].split("=== end")[0]
    names = {
        line.split("compilation of jit(")[1].split(")")[0]
        for line in window.splitlines()
        if "Finished XLA compilation of jit(" in line
    }
    assert "_fit_linear" in names
    # JAX's own key staging may compile too; no jaxcausal eager operation may
    assert names - {"_fit_linear", "stage", "_threefry_seed"} == set(), names


@pytest.mark.parametrize("x64", [True, False])
def test_result_summaries_on_the_host_equal_the_compiled_ones(x64):
    """`theta`, `se`, `t_stat`, `pval` and `confint` of a concrete result are computed with NumPy
    (no program to compile in a one-off script); traced, they compile. Both give the same numbers
    (float32: within 2 ulp of the value; p-values within 1e-6)."""
    from scipy.stats import norm

    from jaxcausal.dml._result import DMLResult

    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        rng = np.random.default_rng(0)
        theta_rep = jnp.asarray(rng.normal(0.5, 0.1, (3, 4)), dtype)  # even n_rep: two middles
        se_rep = jnp.asarray(rng.uniform(0.05, 0.2, (3, 4)), dtype)
        scores = jnp.zeros((3, 4, 10), dtype)
        res = DMLResult(theta_rep=theta_rep, se_rep=se_rep, psi=scores, psi_a=scores,
                        psi_b=scores, predictions={}, losses={},
                        folds=jnp.zeros((4, 10), jnp.int32), checks={}, t_names=("a", "b", "c"))

        def props(r):
            return r.theta, r.se, r.t_stat, r.pval, r.confint(0.9)

        host = props(res)
        traced = jax.jit(props)(res)
        for h, t in zip(host, traced):
            assert isinstance(h, jax.Array) and h.dtype == dtype
            np.testing.assert_allclose(h, t, rtol=1e-12 if x64 else 2.4e-7, atol=1e-6 * (not x64))
        np.testing.assert_allclose(host[3], 2 * norm.sf(np.abs(np.asarray(host[2], np.float64))),
                                   rtol=1e-12 if x64 else 1e-5)
