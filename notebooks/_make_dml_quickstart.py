"""Writes notebooks/dml_quickstart.ipynb (run from the repository root)."""

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("# Double machine learning with jaxcausal: a quickstart\n\n"
       "Estimate a causal parameter with cross-fitted neural nuisances, get DoubleML's inference, "
       "and run a whole Monte Carlo study in one batched call. Every learner of every fold and "
       "repetition is fitted in one compiled computation.\n\n"
       "Set `JAXCAUSAL_SMALL=1` to run everything at a small size (the test suite does)."),
    code("import os\n\nimport jax\nimport jax.random as jr\n\nimport jaxcausal as jc\n\n"
         "SMALL = os.environ.get(\"JAXCAUSAL_SMALL\", \"0\") == \"1\"\n"
         "N_OBS = 300 if SMALL else 2000\n"
         "N_REP = 2 if SMALL else 5\n"
         "N_SIMS = 8 if SMALL else 200\n"
         "MLP = jc.learners.MLP(max_steps=100) if SMALL else jc.learners.MLP()"),
    md("## Data\n\nThe partially linear model of Chernozhukov et al. (2018): "
       "$y = 0.5\\,d + g_0(x) + \\zeta$, $d = m_0(x) + v$, drawn from a key."),
    code("data = jc.datasets.make_plr_CCDDHNR2018(n_obs=N_OBS, dim_x=20, alpha=0.5, key=jr.key(0))\n"
         "data.to_pandas().head()"),
    md("## Partially linear regression with neural nuisances\n\n"
       "`ml_l` learns $E[y|x]$ and `ml_m` learns $E[d|x]$; 5 folds x `N_REP` repetitions are "
       "fitted in one `vmap`."),
    code("est = jc.dml.PLR(MLP, MLP, score=jc.dml.PartiallingOut(), n_folds=5, n_rep=N_REP)\n"
         "res = est.fit(data, key=jr.key(1))\nres.summary()"),
    code("print(\"per repetition:\", res.theta_rep, res.se_rep)\n"
         "print(\"out-of-fold RMSE of the nuisances:\", {k: v.mean() for k, v in res.losses.items()})\n"
         "res.confint(level=0.9)"),
    md("The result is an immutable pytree: the same fit runs under `jit` and `vmap`, and a second "
       "fit with the same shapes does not recompile."),
    md("## Binary treatment: the interactive regression model\n\n"
       "ATE and ATTE with the doubly robust score; propensities from a logistic regression."),
    code("irm_data = jc.datasets.make_irm_data(n_obs=N_OBS, dim_x=10, theta=0.5, key=jr.key(2))\n"
         "irm = jc.dml.IRM(MLP, jc.learners.Logistic(l2=1.0), score=jc.dml.ATE(), n_rep=N_REP)\n"
         "irm_res = irm.fit(irm_data, key=jr.key(3))\nirm_res.summary()"),
    md("## Several treatments and joint confidence intervals\n\n"
       "Each treatment column gets its own coefficient (the other treatments join the "
       "covariates); the multiplier bootstrap gives simultaneous intervals."),
    code("import jax.numpy as jnp\n\n"
         "d2 = data.x[:, 1] + jr.normal(jr.key(4), (N_OBS,))\n"
         "two = jc.CausalData(data.y + 0.2 * d2, jnp.stack([data.t[:, 0], d2], 1), data.x,\n"
         "                    t_names=(\"d\", \"d2\"))\n"
         "lin = jc.learners.Linear()\n"
         "two_res = jc.dml.PLR(lin, lin, n_rep=N_REP).fit(two, key=jr.key(5))\n"
         "boot = two_res.bootstrap(jc.dml.WildBootstrap(), n_rep_boot=500, key=jr.key(6))\n"
         "print(two_res.summary())\nprint(\"joint 95% intervals:\", boot.confint(0.95))"),
    md("## Heterogeneous effects\n\n"
       "The best linear predictor of the effect given the covariates (robust standard errors), "
       "as DoubleML's `cate()`."),
    code("cate = jc.dml.CATE(jc.dml.PLR(lin, lin, n_rep=N_REP)).fit(data, key=jr.key(7))\n"
         "cate.summary().head()"),
    md("## A Monte Carlo study in one call\n\n"
       "`simulate` draws `N_SIMS` data sets and fits the estimator on each, all in one batched "
       "computation sharded over the available devices."),
    code("study = jc.dml.simulate(\n"
         "    jc.dml.PLR(MLP, MLP),\n"
         "    lambda k: jc.datasets.make_plr_CCDDHNR2018(n_obs=500, alpha=0.5, key=k),\n"
         "    key=jr.key(8), n_sims=N_SIMS, truth=0.5,\n)\nstudy"),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/dml_quickstart.ipynb")
