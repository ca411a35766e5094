"""Writes notebooks/dml_sensitivity.ipynb (run from the repository root)."""

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("# Sensitivity analysis, LATE, potential outcomes and clustered data\n\n"
       "How strong would an unobserved confounder have to be to change the conclusion? The "
       "sensitivity analysis of Chernozhukov, Cinelli, Newey, Sharma and Syrgkanis (\"Long Story "
       "Short\", 2022), as in DoubleML, bounds the estimate under confounding of a given "
       "strength. Its elements come out of the same compiled cross-fit as the estimate. The "
       "notebook then fits a LATE with a binary instrument, average potential outcomes of a "
       "discrete treatment, and a two-way clustered panel.\n\n"
       "Set `JAXCAUSAL_SMALL=1` to run everything at a small size (the test suite does)."),
    code("import os\n\nimport jax.random as jr\nimport matplotlib.pyplot as plt\n\n"
         "import jaxcausal as jc\n\n"
         "SMALL = os.environ.get(\"JAXCAUSAL_SMALL\", \"0\") == \"1\"\n"
         "N_OBS = 400 if SMALL else 2000\n"
         "# small runs (the test suite) use linear nuisances, full runs neural ones\n"
         "REG = jc.learners.Linear() if SMALL else jc.learners.MLP()"),
    md("## A partially linear model and its sensitivity\n\n"
       "$y = 0.5\\,d + g_0(x) + \\zeta$. The scenario `cf_y = cf_d = 0.03` says: the "
       "confounders explain 3 % of the outcome's residual variation and add 3 % to the "
       "variation of the Riesz representer (for the PLR: of the treatment residual). `rho = 1` "
       "is the adversarial case."),
    code("data = jc.datasets.make_plr_CCDDHNR2018(n_obs=N_OBS, dim_x=20, alpha=0.5, key=jr.key(0))\n"
         "res = jc.dml.PLR(REG, REG, n_folds=5).fit(data, key=jr.key(1))\n"
         "sens = res.sensitivity(cf_y=0.03, cf_d=0.03, rho=1.0, level=0.95, null_hypothesis=0.0)\n"
         "sens.summary()"),
    md("`theta lower`/`theta upper` bound the effect under that confounding; `CI lower`/"
       "`CI upper` add sampling uncertainty (one-sided, level 0.95). The robustness value `RV` "
       "is the confounding strength (`cf_y = cf_d`) that would move the bound to the null "
       "hypothesis; `RVa` the same for the confidence bound."),
    md("## Benchmarks: how strong is an observed covariate?\n\n"
       "Dropping observed covariates and refitting (same folds, same key) shows what "
       "`cf_y`, `cf_d` and `rho` a confounder as strong as them would have."),
    code("bench = res.sensitivity_benchmark(data, benchmarking_set=[\"X1\"])\nbench"),
    md("## The contour plot\n\nThe lower bound over a grid of `cf_d` x `cf_y`; the red line is "
       "where it crosses the null hypothesis, the diamond the scenario and the dot the "
       "benchmark of `X1`."),
    code("fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))\n"
         "sens.plot(benchmarks=bench, ax=axes[0], grid_size=30 if SMALL else 100)\n"
         "sens.plot(ci=True, benchmarks=bench, ax=axes[1], grid_size=30 if SMALL else 100)\n"
         "plt.tight_layout()"),
    md("## Binary instrument: the local average treatment effect\n\n"
       "`IIVM` with a binary instrument $z$; without always-takers the model fixes "
       "$r(0, X) = 0$. The sensitivity analysis of the LATE treats confounding of the "
       "instrument (an extension: DoubleML 0.11 has none for IIVM)."),
    code("iv = jc.datasets.make_iivm_data(n_obs=N_OBS, dim_x=10, theta=0.5, key=jr.key(2))\n"
         "clf = jc.learners.Logistic()\n"
         "late = jc.dml.IIVM(REG, clf, clf).fit(iv, key=jr.key(3))\n"
         "print(late.summary())\nlate.sensitivity().summary()"),
    md("## A discrete treatment: average potential outcomes and contrasts\n\n"
       "`APOS` fits $E[Y(d)]$ for every level in one compiled call; `causal_contrast` gives "
       "the differences, with DoubleML's sharper sensitivity elements for contrasts. Here "
       "$E[Y(d)] = 0.25 + 0.5 d$."),
    code("disc = jc.datasets.make_apo_data(n_obs=N_OBS, n_levels=3, key=jr.key(4))\n"
         "apos = jc.dml.APOS(REG, clf, treatment_levels=[0, 1, 2]).fit(disc, key=jr.key(5))\n"
         "print(apos.summary())\n"
         "contrast = apos.causal_contrast(reference_levels=0)\n"
         "print(contrast.summary())\n"
         "contrast.sensitivity(cf_y=0.05, cf_d=0.05).summary()"),
    md("## Two-way clustered data\n\n"
       "Firms x years with shocks shared within a firm and within a year: the cluster-robust "
       "standard error (folds split by cluster, DoubleML's variance) is several times the "
       "naive one."),
    code("panel = jc.datasets.make_plr_twoway_cluster(20 if SMALL else 40, 15 if SMALL else 30,\n"
         "                                            key=jr.key(6))\n"
         "lin = jc.learners.Linear()\n"
         "clustered = jc.dml.PLR(lin, lin, n_folds=3).fit(panel, key=jr.key(7))\n"
         "naive = jc.dml.PLR(lin, lin, n_folds=3).fit(\n"
         "    jc.CausalData(panel.y, panel.t, panel.x), key=jr.key(7))\n"
         "print(\"clustered:\", clustered.summary().iloc[0, :2].to_dict())\n"
         "print(\"naive:    \", naive.summary().iloc[0, :2].to_dict())"),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/dml_sensitivity.ipynb")
