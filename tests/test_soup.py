"""oscar-edge soup (oscar_edge/soup.py): the uniform weight average of checkpoints."""
from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from oscar_edge.checkpoint import load_model, model_checkpoint, read, save  # noqa: E402
from oscar_edge.models import build_model  # noqa: E402

PRESET = "oscar-edge-v2-h16-d4"


def _ckpt(path, seed, preset=PRESET):
    torch.manual_seed(seed)
    model = build_model(preset)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(seed + 1)
    save(model_checkpoint(model, {"note": f"seed {seed}"}), path)
    return path


def _soup(*args):
    return subprocess.run([sys.executable, "-m", "oscar_edge.cli", "soup", *map(str, args)],
                          capture_output=True, text=True)


def test_soup_is_the_mean_of_the_float_tensors(tmp_path):
    a, b, c = (_ckpt(tmp_path / f"{i}.pt", i) for i in range(3))
    out = tmp_path / "soup.pt"
    p = _soup(a, b, c, "--out", out)
    assert p.returncode == 0, p.stderr
    sa, sb, sc = (read(x)["state_dict"] for x in (a, b, c))
    soup = read(out)
    assert soup["preset"] == PRESET and len(soup["meta"]["soup_of"]) == 3
    for k, v in soup["state_dict"].items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (sa[k] + sb[k] + sc[k]) / 3)
        else:
            assert torch.equal(v, sa[k])  # integer buffers: the first checkpoint's
    assert any(not torch.equal(soup["state_dict"][k], sa[k]) for k in sa)
    model, meta = load_model(out)             # loads with weights_only=True, fits the preset
    assert meta["soup_of"][0]["sha256"] and not model.training


def test_soup_refuses_bad_input_in_one_line(tmp_path):
    a = _ckpt(tmp_path / "a.pt", 0)
    other = _ckpt(tmp_path / "other.pt", 1, preset="oscar-edge")
    existing = tmp_path / "exists.pt"
    existing.write_bytes(b"keep me")
    cases = [((a, "--out", tmp_path / "x.pt"), "at least two checkpoints"),
             ((a, other, "--out", tmp_path / "y.pt"), "is preset oscar-edge"),
             ((a, tmp_path / "missing.pt", "--out", tmp_path / "z.pt"), "not found"),
             ((a, a, "--out", existing), "exists")]
    for args, text in cases:
        p = _soup(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and text in p.stderr, p.stderr
    assert existing.read_bytes() == b"keep me"
    assert not any((tmp_path / n).exists() for n in ("x.pt", "y.pt", "z.pt"))
