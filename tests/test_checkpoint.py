"""Checkpoints load safely, fail clearly, and the shipped model is there and small."""
import pytest
import torch

from oscar_edge import checkpoint as ckpt
from oscar_edge.models import build_model


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
    assert model.preset.name == "oscar-edge"
    assert meta["val_metrics"]["mNoCoAP"] > 0.5
