"""Image reading and the SIRST-V2 training dataset."""
import cv2
import numpy as np
import pytest
import torch

from oscar_edge.data.annotations import AnnotationError, load_samples
from oscar_edge.data.dataset import SirstTrainDataset, collate, noco_on_p2
from oscar_edge.preprocess import (MEAN, STD, ImageReadError, prepare, read_grey,
                                   to_grey_u8)


@pytest.fixture()
def grey_img():
    g = np.zeros((24, 40), np.uint8)
    g[5:9, 30:34] = 200
    return g


def _write_png(path, array, palette=False):
    if palette:
        from PIL import Image  # matplotlib depends on pillow
        im = Image.fromarray(array, mode="L").convert("P")
        im.save(path)
    else:
        assert cv2.imwrite(str(path), array)


@pytest.mark.parametrize("kind", ["grey", "rgb", "rgba", "palette", "grey16"])
def test_read_grey_all_png_kinds(tmp_path, grey_img, kind):
    p = tmp_path / f"{kind}.png"
    if kind == "grey":
        _write_png(p, grey_img)
    elif kind == "rgb":
        _write_png(p, cv2.cvtColor(grey_img, cv2.COLOR_GRAY2BGR))
    elif kind == "rgba":
        _write_png(p, cv2.cvtColor(grey_img, cv2.COLOR_GRAY2BGRA))
    elif kind == "grey16":
        _write_png(p, grey_img.astype(np.uint16) * 257)
    else:
        _write_png(p, grey_img, palette=True)
    out = read_grey(str(p))
    assert out.dtype == np.uint8 and out.shape == grey_img.shape
    assert int(np.abs(out.astype(int) - grey_img).max()) <= 1


def test_to_grey_u8_frames(grey_img):
    assert to_grey_u8(grey_img.astype(np.uint16) * 257).tolist() == grey_img.tolist()
    bgr = cv2.cvtColor(grey_img, cv2.COLOR_GRAY2BGR)
    assert to_grey_u8(bgr).tolist() == grey_img.tolist()
    with pytest.raises(ValueError):
        to_grey_u8(np.zeros((0, 0), np.uint8))


def test_corrupt_and_empty_images_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="bad.png"):
        read_grey(str(bad))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png"):
        read_grey(str(empty))
    with pytest.raises(ImageReadError, match="missing.png"):
        read_grey(str(tmp_path / "missing.png"))


def test_prepare_keep_ratio_fit_and_pad(grey_img):
    x, box = prepare(np.full((240, 320), 120, np.uint8))
    # fit (1000, 600): scale = min(1000/320, 600/240) = 2.5 -> 600 x 800, already /32? 600 -> 608
    assert box.resized == (600, 800) and box.padded == (608, 800)
    assert x.shape == (3, 608, 800) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, :600], (120 - MEAN) / STD, rtol=1e-6)
    assert float(np.abs(x[:, 600:]).max()) == 0.0  # padding is zero after normalisation
    back = box.to_original(np.array([[0, 0, 800, 600]], np.float32))
    np.testing.assert_allclose(back, [[0, 0, 320, 240]])


def test_prepare_fixed_input_size_rejects_non_multiple_of_32(grey_img):
    x, box = prepare(np.zeros((512, 640), np.uint8), input_size=(512, 640))
    assert x.shape == (3, 512, 640) and box.scale_x == 1.0
    with pytest.raises(ValueError, match="multiple of 32"):
        prepare(np.zeros((512, 640), np.uint8), input_size=(500, 640))


def test_malformed_xml_names_file(tmp_path):
    (tmp_path / "splits").mkdir()
    (tmp_path / "mixed").mkdir()
    (tmp_path / "annotations" / "bboxes").mkdir(parents=True)
    (tmp_path / "splits" / "s.txt").write_text("a\n")
    cv2.imwrite(str(tmp_path / "mixed" / "a.png"), np.zeros((8, 8), np.uint8))
    (tmp_path / "annotations" / "bboxes" / "a.xml").write_text("<annotation><object>")
    with pytest.raises(AnnotationError, match="a.xml"):
        load_samples(tmp_path, "s")


def test_train_dataset_items(sirst_root):
    ds = SirstTrainDataset(str(sirst_root), "mini_trainval", crop=(128, 160), seed=3)
    assert len(ds) == 4
    seen_target = False
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            x, boxes, noco = ds[i]
            assert x.shape == (3, 128, 160) and noco.shape == (1, 32, 40)
            assert boxes.ndim == 2 and boxes.shape[1] == 4
            if len(boxes):
                seen_target = True
                assert float(boxes[:, 0::2].min()) >= 0 and float(boxes[:, 0::2].max()) <= 160
                # the NoCo target is non-zero near a kept target
                c = ((boxes[:, :2] + boxes[:, 2:]) / 2 / 4).long()
                cx, cy = int(c[0, 0].clamp(max=39)), int(c[0, 1].clamp(max=31))
                assert float(noco[0, max(cy - 2, 0):cy + 3, max(cx - 2, 0):cx + 3].max()) > 0
    assert seen_target
    # same (seed, epoch, index) -> same crop
    ds.set_epoch(1)
    a, b = ds[0], ds[0]
    assert torch.equal(a[0], b[0])
    x, boxes, noco = collate([ds[0], ds[1]])
    assert x.shape == (2, 3, 128, 160) and len(boxes) == 2


def test_noco_on_p2_samples_pixel_4i_plus_2():
    m = np.arange(64, dtype=np.float32).reshape(8, 8)
    assert noco_on_p2(m).tolist() == [[18.0, 22.0], [50.0, 54.0]]


def test_crop_must_be_multiple_of_32(sirst_root):
    with pytest.raises(ValueError, match="multiple of 32"):
        SirstTrainDataset(str(sirst_root), "mini_trainval", crop=(100, 100))


def test_scale_jitter_crops_targets_at_other_scales(sirst_root):
    """Scale jitter (0.5x-2x): the same image and crop origin rule, targets appear at other
    sizes; crops keep their shape, boxes stay inside and on the NoCo map; reproducible."""
    torch = pytest.importorskip("torch")
    from oscar_edge.data.dataset import SirstTrainDataset

    plain = SirstTrainDataset(str(sirst_root), "mini_trainval", crop=(128, 128), seed=3)
    jit = SirstTrainDataset(str(sirst_root), "mini_trainval", crop=(128, 128), seed=3,
                            scale_range=(0.5, 2.0))
    sizes_plain, sizes_jit = [], []
    for epoch in range(12):
        plain.set_epoch(epoch)
        jit.set_epoch(epoch)
        for i in range(len(jit)):
            x, b, noco = jit[i]
            assert tuple(x.shape) == (3, 128, 128) and tuple(noco.shape) == (1, 32, 32)
            assert torch.all(b[:, 0::2] >= 0) and torch.all(b[:, 0::2] <= 128)
            sizes_jit += ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).sqrt().tolist()
            _, bp, _ = plain[i]
            sizes_plain += ((bp[:, 2] - bp[:, 0]) * (bp[:, 3] - bp[:, 1])).sqrt().tolist()
    r_plain = max(sizes_plain) / max(min(sizes_plain), 1e-3)
    r_jit = max(sizes_jit) / max(min(sizes_jit), 1e-3)
    assert r_jit > r_plain * 1.5          # a wider spread of target sizes
    jit.set_epoch(5)
    a, b = jit[1], jit[1]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])   # same (seed, epoch, index)
    with pytest.raises(ValueError, match="scale_range"):
        SirstTrainDataset(str(sirst_root), "mini_trainval", crop=(128, 128),
                          scale_range=(2.0, 0.5))
