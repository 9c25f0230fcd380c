"""Command-line tools: info, train (resume, NaN guard, no overwrite), evaluate, errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from oscar_edge import cli
from oscar_edge import train as train_tool

REPO = Path(__file__).resolve().parents[1]


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=str(REPO), **kw)


def test_info_prints_every_preset(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for name in ("oscar-r18-p2-256", "oscar-r18-p2-128", "oscar-edge"):
        assert f"`{name}`" in out
    assert "GFLOPs @ 640x512" in out


def test_unknown_command_exit_2(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_evaluate_missing_checkpoint_one_line_exit_2(sirst_root, tmp_path):
    p = run("oscar_edge.evaluate", "--checkpoint", str(tmp_path / "none.pt"),
            "--data", str(sirst_root), "--split", "mini_test")
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "checkpoint not found" in p.stderr
    assert "Traceback" not in p.stderr


def test_evaluate_unusable_device_one_line_exit_2(sirst_root):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a usable CUDA GPU: --device cuda is not an error here")
    p = run("oscar_edge", "evaluate", "--device", "cuda", "--data", str(sirst_root),
            "--split", "mini_test")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "--device cuda" in p.stderr
    p = run("oscar_edge", "evaluate", "--device", "gpu0", "--data", str(sirst_root),
            "--split", "mini_test")
    assert p.returncode == 2 and "unknown PyTorch device" in p.stderr


def test_evaluate_corrupt_checkpoint_exit_2(sirst_root, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    p = run("oscar_edge", "evaluate", "--checkpoint", str(bad), "--data", str(sirst_root),
            "--split", "mini_test")
    assert p.returncode == 2 and "bad.pt" in p.stderr and "Traceback" not in p.stderr


def test_evaluate_shipped_model_json_and_plot(sirst_root, tmp_path):
    out_json, out_png = tmp_path / "m.json", tmp_path / "pr.png"
    p = run("oscar_edge.evaluate", "--data", str(sirst_root), "--split", "mini_test",
            "--json", str(out_json), "--plot", str(out_png), "--no-progress")
    assert p.returncode == 0, p.stderr
    m = json.loads(out_json.read_text())
    for key in ["mNoCoAP", "AP50", "Pd", "Fa_per_image"] + [f"NoCoAP{t}0" for t in range(1, 10)]:
        assert 0.0 <= m[key] or key.startswith("Fa"), key
    assert m["num_images"] == 4 and "mNoCoAP" in p.stdout
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the image bootstrap's interval: on by default, ordered, within [0, 1]; off with 0
    assert m["bootstrap_resamples"] == 1000 and 0.0 <= m["mNoCoAP_p5"] <= m["mNoCoAP_p95"] <= 1.0
    assert "90 % interval over the split's images" in p.stdout
    p = run("oscar_edge.evaluate", "--data", str(sirst_root), "--split", "mini_test",
            "--json", str(out_json), "--no-progress", "--bootstrap", "0")
    assert p.returncode == 0 and "mNoCoAP_p5" not in json.loads(out_json.read_text())
    assert "interval" not in p.stdout
    p = run("oscar_edge.evaluate", "--data", str(sirst_root), "--split", "mini_test",
            "--bootstrap", "-2")
    assert p.returncode == 2 and "--bootstrap must be 0" in p.stderr


def _train_args(sirst_root, out, *extra):
    return ["--preset", "oscar-edge", "--data", str(sirst_root), "--train-split",
            "mini_trainval", "--val-split", "mini_test", "--out", str(out), "--batch-size", "2",
            "--crop", "128x128", "--max-iters-per-epoch", "1", "--val-every", "1", *extra]


def test_train_resume_and_no_overwrite(sirst_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_tool.main(_train_args(sirst_root, out, "--epochs", "1")) == 0
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1] and "val_mNoCoAP" in log[0]
    before = (out / "last.pt").read_bytes()
    # a second run into the same folder must not overwrite it
    assert train_tool.main(_train_args(sirst_root, out, "--epochs", "2")) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "last.pt").read_bytes() == before
    # resume continues at epoch 2
    assert train_tool.main(_train_args(sirst_root, out, "--epochs", "2", "--resume")) == 0
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert log[1]["iteration"] == 2
    assert "resuming" in capsys.readouterr().out


def test_train_nan_guard_skips_step(sirst_root, tmp_path, capsys, monkeypatch):
    import torch
    from oscar_edge.models import losses

    real = losses.oscar_loss
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        loss, parts = real(*a, **k)
        return (loss * float("nan"), parts) if calls["n"] == 1 else (loss, parts)

    monkeypatch.setattr(losses, "oscar_loss", flaky)
    args = _train_args(sirst_root, tmp_path / "nan", "--epochs", "1")
    args[args.index("--max-iters-per-epoch") + 1] = "2"
    assert train_tool.main(args) == 0
    out = capsys.readouterr()
    assert "non-finite loss" in out.out + out.err and "step skipped" in out.out + out.err
    state = torch.load(tmp_path / "nan" / "last.pt", weights_only=True)
    assert state["skipped"] == 1
    for k, v in state["state_dict"].items():
        if v.is_floating_point():
            assert bool(torch.isfinite(v).all()), k


def test_train_bad_crop_exit_2(sirst_root, tmp_path, capsys):
    assert train_tool.main(_train_args(sirst_root, tmp_path / "c", "--crop", "100x100")) == 2
    assert "multiples of 32" in capsys.readouterr().err


def test_train_small_target_weight_reaches_the_loss(sirst_root, tmp_path, capsys, monkeypatch):
    from oscar_edge.models import losses

    real = losses.oscar_loss
    seen = []

    def spy(outputs, boxes, noco, small_target_weight=1.0):
        seen.append(small_target_weight)
        return real(outputs, boxes, noco, small_target_weight)

    monkeypatch.setattr(losses, "oscar_loss", spy)
    args = _train_args(sirst_root, tmp_path / "stw", "--epochs", "1",
                       "--small-target-weight", "2.5")
    args[args.index("--max-iters-per-epoch") + 1] = "2"
    assert train_tool.main(args) == 0
    assert seen == [2.5, 2.5]
    bad = _train_args(sirst_root, tmp_path / "stw-bad", "--epochs", "1",
                      "--small-target-weight", "0.5")
    assert train_tool.main(bad) == 2
    assert "--small-target-weight" in capsys.readouterr().err


def test_train_ema_is_validated_saved_and_resumed(sirst_root, tmp_path, capsys):
    """--ema: best.pt holds the EMA weights (not the raw ones), last.pt carries the EMA state
    and --resume continues it; --scale-jitter is checked."""
    import torch

    from oscar_edge import checkpoint as ckpt

    out = tmp_path / "ema"
    args = _train_args(sirst_root, out, "--epochs", "1", "--ema", "0.5", "--ema-tau", "0",
                       "--scale-jitter", "0.5,2")
    args[args.index("--preset") + 1] = "oscar-edge-v2"
    args[args.index("--batch-size") + 1] = "1"
    args[args.index("--max-iters-per-epoch") + 1] = "3"   # the first update only copies
    assert train_tool.main(args) == 0
    last, best = ckpt.read(out / "last.pt"), ckpt.read(out / "best.pt")
    assert best["meta"]["ema"] is True and best["preset"] == "oscar-edge-v2"
    ema = {k[len("module."):]: v for k, v in last["ema_state_dict"].items()
           if k.startswith("module.")}
    raw = last["state_dict"]
    assert set(ema) == set(raw)
    name = next(k for k in raw if k.endswith("refine_cls.weight"))
    assert torch.equal(best["state_dict"][name], ema[name])
    assert not torch.equal(ema[name], raw[name])      # the average differs from the raw step
    args[args.index("--epochs") + 1] = "2"
    assert train_tool.main(args + ["--resume"]) == 0
    assert int(ckpt.read(out / "last.pt")["ema_state_dict"]["n_averaged"]) == 6
    final = ckpt.read(out / "final.pt")
    assert final["meta"]["ema"] is True and final["meta"]["epoch"] == 2
    bad = _train_args(sirst_root, tmp_path / "bad", "--epochs", "1", "--scale-jitter", "2,0.5")
    assert train_tool.main(bad) == 2
    assert "--scale-jitter" in capsys.readouterr().err
    bad = _train_args(sirst_root, tmp_path / "bad2", "--epochs", "1", "--ema", "0.9",
                      "--ema-tau", "-1")
    assert train_tool.main(bad) == 2
    assert "--ema-tau" in capsys.readouterr().err


def test_ema_warmup_ramp():
    """The EMA decay ramps from 0 to DECAY (tau 0: constant); the update is a lerp by 1 - decay
    for float tensors and a rounded average for integer buffers."""
    import math

    import torch

    assert train_tool.ema_decay(0.998, 0, 1) == 0.998
    assert train_tool.ema_decay(0.998, 500, 0) == 0.0
    assert train_tool.ema_decay(0.998, 500, 500) == pytest.approx(0.998 * (1 - math.exp(-1)))
    assert train_tool.ema_decay(0.998, 500, 10_000) == pytest.approx(0.998, abs=1e-8)
    decays = [train_tool.ema_decay(0.99, 100, n) for n in range(0, 1000, 50)]
    assert decays == sorted(decays) and max(decays) < 0.99
    fn = train_tool.ema_update_fn(0.9, 0)
    e, m = [torch.tensor([1.0, 2.0])], [torch.tensor([3.0, 4.0])]
    fn(e, m, torch.tensor(5))
    assert torch.allclose(e[0], torch.tensor([1.2, 2.2]))
    ei, mi = [torch.tensor(10)], [torch.tensor(20)]
    fn(ei, mi, torch.tensor(5))
    assert ei[0].dtype == torch.int64 and int(ei[0]) == 11


def test_train_same_seed_same_weights_other_seed_other_weights(sirst_root, tmp_path):
    """--seed fixes initialisation, crops and batch order: on one machine two runs with the same
    seed end with the same weights, and another seed gives other weights."""
    import torch

    def weights(name, seed):
        out = tmp_path / name
        args = _train_args(sirst_root, out, "--epochs", "1", "--seed", seed, "--threads", "1")
        args[args.index("--max-iters-per-epoch") + 1] = "2"
        assert train_tool.main(args) == 0
        return torch.load(out / "final.pt", map_location="cpu", weights_only=True)["state_dict"]

    a, b, c = weights("a", "3"), weights("b", "3"), weights("c", "4")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
