"""benchmarks/soak.py runs end to end (a few frames here; the full run is 10,000 frames)."""
import subprocess
import sys

from run_helpers import REPO, needs_onnx


@needs_onnx
def test_soak_script_small(tmp_path):
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--frames", "40",
                        "--size", "96x64", "--file-frames", "12", "--sample-every", "10",
                        "--workdir", str(tmp_path)], capture_output=True, text=True,
                       cwd=str(REPO), timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert out.startswith("## oscar-edge soak: 40 synthetic frames 96x64")
    for word in ("| frames lost in the JSON lines | 0 missing, 0 duplicated | ok |",
                 "RSS growth after warm-up", "OS threads", "12 in the JSON lines, 0 lost",
                 "end-to-end", "result: PASS"):
        assert word in out, word
