"""Checkpoints load safely, fail clearly, and the shipped model is there and small."""
import pytest
import torch

from oscar_edge import checkpoint as ckpt
from oscar_edge.models import build_model
from oscar_edge.presets import SHIPPED_PRESET


def test_roundtrip(tmp_path):
    model = build_model("oscar-edge")
    path = tmp_path / "m.pt"
    ckpt.save(ckpt.model_checkpoint(model, {"note": "x"}), path)
    loaded, meta = ckpt.load_model(path)
    assert meta == {"note": "x"} and loaded.preset.name == "oscar-edge"
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a.float(), b.float()), k


@pytest.mark.parametrize("content,match", [
    (b"", "cannot read checkpoint"),
    (b"\x00garbage" * 100, "cannot read checkpoint"),
])
def test_corrupt_file_clear_error(tmp_path, content, match):
    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(ckpt.CheckpointError, match=match) as e:
        ckpt.load_model(p)
    assert "bad.pt" in str(e.value) and "\n" not in str(e.value)


def test_truncated_checkpoint(tmp_path):
    p = tmp_path / "t.pt"
    ckpt.save(ckpt.model_checkpoint(build_model("oscar-edge"), {}), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="t.pt"):
        ckpt.load_model(p)


def test_not_a_checkpoint_and_wrong_preset(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(3)}, p)
    with pytest.raises(ckpt.CheckpointError, match="not an oscar-edge checkpoint"):
        ckpt.load_model(p)
    state = ckpt.model_checkpoint(build_model("oscar-edge"), {})
    state["preset"] = "oscar-r18-p2-128"
    torch.save(state, p)
    with pytest.raises(ckpt.CheckpointError, match="do not fit"):
        ckpt.load_model(p)


def test_pickled_code_is_refused(tmp_path):
    """weights_only=True: a checkpoint that would run code on load is rejected."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        pickle.dump({"preset": "oscar-edge", "state_dict": Evil()}, f)
    with pytest.raises(ckpt.CheckpointError, match="evil.pt"):
        ckpt.load_model(p)


def test_shipped_model_loads_and_is_small():
    assert ckpt.SHIPPED_WEIGHTS.is_file(), "the trained oscar-edge weights must ship"
    assert ckpt.SHIPPED_WEIGHTS.stat().st_size <= 10 * 1024 * 1024
    model, meta = ckpt.load_model()
    assert model.preset.name == SHIPPED_PRESET
    assert meta["val_metrics"]["mNoCoAP"] > 0.5


def test_shipped_onnx_is_the_export_of_the_shipped_weights():
    """oscar-edge.onnx (the runtime's default model) comes from exactly oscar-edge.pt."""
    import hashlib

    onnx = pytest.importorskip("onnx")
    path = ckpt.SHIPPED_WEIGHTS.with_suffix(".onnx")
    assert path.is_file() and path.stat().st_size <= 10 * 1024 * 1024
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    digest = hashlib.sha256(ckpt.SHIPPED_WEIGHTS.read_bytes()).hexdigest()
    assert meta["source_checkpoint_sha256"] == digest
    assert meta["preset"] == SHIPPED_PRESET


@pytest.mark.slow
def test_shipped_model_reaches_target_on_val_full(sirst_root):
    """Regression guard for the README figure (goal: refined mNoCoAP >= 0.88 on val_full)."""
    from oscar_edge.backends.torch_backend import TorchBackend
    from oscar_edge.data.annotations import load_samples
    from oscar_edge.evaluate import evaluate_model
    from oscar_edge.pipeline import Detector

    model, meta = ckpt.load_model()
    # default settings (peak refinement on), as the training-time validation (meta) ran
    m = evaluate_model(Detector(TorchBackend(model)), load_samples(sirst_root, "val_full"),
                       progress=False)
    assert m["mNoCoAP"] >= 0.88
    assert m["mNoCoAP"] == pytest.approx(meta["val_metrics"]["mNoCoAP"], abs=1e-6)
