import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_mirrored_strategy_over_two_logical_cpus():
    # Logical devices must be configured before TensorFlow starts, so this runs in its own process.
    proc = subprocess.run([sys.executable, os.path.join(HERE, "distributed_check.py")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stderr[-3000:]
