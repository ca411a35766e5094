import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jaxcausal as jc
from jaxcausal import _demo
from jaxcausal.cli import main

# Lines every run of the demo prints (the numbers in them vary with the machine).
DEMO_LINES = [
    r"== Causal hybrid modelling: Q10 of ecosystem respiration ==",
    r"naive regression of log RECO on TA +\d\.\d{3}",
    r"jaxcausal DML, MLP nuisances \(5 folds x 1 rep\) +\d\.\d{3} +95% CI \d\.\d{3}-\d\.\d{3}",
    r"end-to-end, TA also in the network \(2 members\) +\d\.\d{3}",
    r"== Ensemble: 4 MLPs \(2-fold cross-fitting x 2 repetitions\) in one compiled call ==",
    r"one call: +\d+\.\d\d s, of which \d+\.\d\d s compiling",
    r"out-of-fold R\^2 over 2 repetitions: mean -?\d\.\d{3}",
    r"on a GPU the same call trains all members together",
    r"demo finished in \d+\.\d s",
]


def _command() -> list[str]:
    """The installed console script beside this interpreter, else `python -m jaxcausal`."""
    script = Path(sys.executable).with_name("jaxcausal")
    if script.exists():
        return [str(script)]
    found = shutil.which("jaxcausal")
    return [found] if found else [sys.executable, "-m", "jaxcausal"]


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: jaxcausal" in out and "version" in out and "demo" in out


def test_version_prints_the_package_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == jc.__version__


def test_no_command_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage: jaxcausal" in capsys.readouterr().err


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_demo_sections_are_a_list_of_functions():
    assert _demo.SECTIONS and all(callable(s) for s in _demo.SECTIONS)


def test_console_script_runs_version_and_small_demo():
    cmd = _command()
    version = subprocess.run(cmd + ["version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == jc.__version__
    # The small demo as a user starts it (one process, the default CPU devices); the full demo
    # differs only in its sizes.
    demo = subprocess.run(cmd + ["demo", "--small"], capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr[-4000:]
    for line in DEMO_LINES:
        assert re.search(line, demo.stdout), f"missing {line!r} in:\n{demo.stdout}"
    # On a CPU the demo never headlines a batched "speed-up" below 1 (#13): it shows the schedule
    # sharded_map picks there and quotes the GPU figure instead.
    assert "speed-up" not in demo.stdout and "one model at a time" not in demo.stdout
    # No silent minutes: every longer fit is announced before it starts.
    assert "... DML: 10 MLPs (2 nuisances x 5 folds x 1 rep)" in demo.stderr


def test_cpu_devices_after_jax_started_is_a_clear_error(capsys):
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()  # the backend of this test process is running
    assert main(["demo", "--small", "--cpu-devices", "3"]) == 2
    assert "--cpu-devices must be set before JAX starts" in capsys.readouterr().err


def test_cpu_devices_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--cpu-devices", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer, got '0'" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "jaxcausal", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: jaxcausal" in proc.stdout
