import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = Path(__file__).with_name("_sharded_child.py")


def test_interventions_shard_over_four_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4")
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, str(CHILD)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["n_devices"] == 4
    # Values sharded over the mesh: each device simulates its interventions; same numbers.
    assert report["diff"] < 1e-12
    assert report["out_devices"] == 4
