import numpy as np

import jaxcausal as jc


def test_sachs_blocks_and_graph():
    s = jc.datasets.sachs()
    assert s.data.shape == (7466, 12)
    counts = s.data["condition"].value_counts()
    assert counts["CD3/CD28"] == 853 and counts["b2cAMP"] == 707
    # The checks of the shared README: PIP2 collapses under Psitectorigenin, Erk under U0126.
    med = s.data.groupby("condition", observed=True).median()
    assert med.loc["Psitectorigenin", "PIP2"] < 3 < 40 < med.loc["CD3/CD28", "PIP2"]
    assert med.loc["U0126", "p44/42"] < 4 < 12 < med.loc["CD3/CD28", "p44/42"]
    assert len(s.edges) == 18 and s.adjacency.sum() == 17
    g = jc.scm.Graph.from_adjacency(s.adjacency, s.names)  # acyclic once PIP2 -> PIP3 is dropped
    assert g.n_nodes == 11
    assert s.targets["U0126"] == "pmek" and s.observational == ("CD3/CD28", "CD3/CD28+ICAM-2")
    assert np.isfinite(s.data[list(s.names)].to_numpy()).all()
