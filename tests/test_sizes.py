"""oscar_edge.sizes: the one WxH / HxW parser (both text orders, both output orders, multiples,
bad text, the argparse type) and the callers that wrap it in their own error type."""
from __future__ import annotations

import argparse

import pytest

from oscar_edge.errors import UserError
from oscar_edge.sizes import argparse_type, parse_size, size_label


def test_text_orders_and_output_orders():
    assert parse_size("640x512") == (640, 512)                                    # W, H
    assert parse_size("640x512", order="hw_out") == (512, 640)                    # H, W
    assert parse_size("512x640", text_order="HxW") == (640, 512)                  # W, H
    assert parse_size("512x640", text_order="HxW", order="hw_out") == (512, 640)  # H, W
    assert parse_size(" 96 X 64 ") == (96, 64) and parse_size("96*64") == (96, 64)
    assert size_label((512, 640)) == "640x512"
    assert size_label(parse_size("1280x1024", order="hw_out")) == "1280x1024"


def test_multiples():
    assert parse_size("640x512", multiple=32) == (640, 512)
    assert parse_size("640x500") == (640, 500)          # no multiple asked: any positive size
    for bad in ("640x500", "650x512"):
        with pytest.raises(ValueError, match="multiples of 32"):
            parse_size(bad, multiple=32)
    with pytest.raises(ValueError, match=r"--input-size 500x640: .*multiples of 32"):
        parse_size("500x640", text_order="HxW", multiple=32, name="--input-size")
    assert parse_size("96x64", multiple=16) == (96, 64)


@pytest.mark.parametrize("text", ["640", "640x", "x512", "axb", "640x512x3", "-640x512", "",
                                  "640,512", "6.4x5"])
def test_bad_text_says_what_it_should_look_like(text):
    with pytest.raises(ValueError, match=r"size must look like 640x512 \(width x height\)"):
        parse_size(text)
    with pytest.raises(ValueError, match=r"--calib-size must look like 512x640 \(height x "
                                         r"width\)"):
        parse_size(text, text_order="HxW", name="--calib-size")


def test_zero_and_bad_orders():
    with pytest.raises(ValueError, match="positive"):
        parse_size("0x512")
    with pytest.raises(ValueError, match="text_order"):
        parse_size("640x512", text_order="WH")
    with pytest.raises(ValueError, match="order"):
        parse_size("640x512", order="hw")


def test_argparse_type_error_is_a_usage_error(capsys):
    p = argparse.ArgumentParser(prog="prog")
    p.add_argument("--size", type=argparse_type(order="hw_out", multiple=32, name="--size"))
    assert p.parse_args(["--size", "640x512"]).size == (512, 640)
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--size", "641x512"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --size: --size 641x512: width and height must be positive multiples of 32" \
        in err
    with pytest.raises(argparse.ArgumentTypeError, match="must look like"):
        argparse_type()("nope")


def test_callers_keep_their_error_types_and_orders():
    from oscar_edge.export.build_engine import parse_shape
    from oscar_edge.export.quantize import parse_size as calib_size
    from oscar_edge.info import _sizes
    from oscar_edge.io.sources import parse_size as source_size
    from oscar_edge.train import parse_size as crop_size

    assert calib_size("512x640") == (512, 640) and calib_size(None) is None       # HxW -> H, W
    assert crop_size("128x96") == (128, 96)                                        # HxW -> H, W
    assert _sizes("640x512,320x256") == [(512, 640), (256, 320)]                   # WxH -> H, W
    assert source_size("640x512") == (640, 512)                                    # WxH -> W, H
    assert parse_shape("1x3x512x640", "--opt-shape") == (1, 3, 512, 640)
    for call in (lambda: calib_size("500x640"), lambda: crop_size("100x100"),
                 lambda: _sizes("640x512,641x512"),
                 lambda: parse_shape("1x3x512x650", "--opt-shape")):
        with pytest.raises(UserError, match="multiples of 32"):
            call()
    with pytest.raises(UserError, match="NxCxHxW"):
        parse_shape("1x3x512", "--opt-shape")
    with pytest.raises(ValueError, match=r"640x512 \(width x height\)"):
        source_size("640")
