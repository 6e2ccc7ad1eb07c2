import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_mirrored_strategy_over_two_logical_cpus():
    # Logical devices must be configured before TensorFlow starts, so this runs in its own process.
    proc = subprocess.run([sys.executable, os.path.join(HERE, "distributed_check.py")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stderr[-3000:]


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_mirrored_strategy_two_processes(tmp_path):
    import json

    ports = [str(_free_port()), str(_free_port())]
    outs = [str(tmp_path / f"worker{i}.json") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "multiworker_check.py"),
                               str(i), *ports, outs[i]], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        errors = [p.communicate(timeout=240)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(e[-2000:] for e in errors)
    results = [json.load(open(o)) for o in outs]
    for r in results:
        assert r["same_as_single_device"] and r["zeros_kept"] and r["trained"]
        assert r["global_batch"] == 16
    assert results[0]["mask_sha256"] == results[1]["mask_sha256"]
