import jax.numpy as jnp
import pytest

import jaxcausal as jc

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def test_plots_draw_every_node_and_probability():
    import matplotlib.pyplot as plt

    g = jc.scm.Graph.from_parents({"z": [], "x": ["z"], "y": ["x", "z"]})
    ax = jc.scm.plot_graph(g, highlight={"x": 0.9})
    labels = sorted(t.get_text() for t in ax.texts if t.get_text())
    assert labels == ["x", "y", "z"]
    arrows = [c for c in ax.get_children() if type(c).__name__ == "Annotation"]
    assert len(arrows) == 3  # one per edge
    post = jc.scm.InterventionPosterior(
        names=g.names,
        target_probs=jnp.array([0.05, 0.9, 0.04]),
        target_log_probs=jnp.log(jnp.array([0.05, 0.9, 0.04])),
        none_prob=jnp.array(0.01),
        strength=jnp.zeros((4, 3)),
        target_weights=jnp.full((4, 3), 1 / 3),
    )
    ax = jc.scm.plot_target_probs(post, top=2)
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.9, 0.05])
    plt.close("all")
    with pytest.raises(TypeError, match="InterventionPosterior"):
        jc.scm.plot_target_probs({"x": 1.0})
