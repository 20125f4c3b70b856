"""PNG, JPEG and TIFF through mt.io.load: values, types, axes, spacing, modes and errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

import medtransfer as mt
from medtransfer.errors import ConfigError, RasterError
from tests.fixtures import PYDICOM_TEST_FILES


def _gray(rows=6, columns=5, dtype=np.uint8, scale=7):
    values = np.arange(rows * columns).reshape(rows, columns) * scale
    return values.astype(dtype)


def test_8_bit_png_loads_transposed_with_identity_affine_and_no_spacing(tmp_path):
    pixels = _gray()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = mt.io.load(tmp_path / "a.png")
    assert tuple(image.shape) == (5, 6) and image.dtype.is_floating_point
    np.testing.assert_array_equal(image.numpy(), pixels.T)  # image[x, y] = column x of row y
    np.testing.assert_array_equal(image.affine.numpy(), np.eye(4))
    assert image.meta["spacing"] == (1.0, 1.0) and image.meta["spacing_known"] is False
    assert image.meta["format"] == "png" and image.meta["stored_dtype"] == "uint8"
    assert image.meta["original_channel_dim"] == "no_channel"
    assert any("spacing=" in note for note in image.meta["geometry_notes"])


def test_16_bit_png_keeps_its_values(tmp_path):
    pixels = _gray(dtype=np.uint16, scale=2000)
    pixels[0, 0] = 65535
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = mt.io.load(tmp_path / "a.png")
    np.testing.assert_array_equal(image.numpy(), pixels.T.astype(np.float32))
    assert image.meta["stored_dtype"] == "uint16" and float(image.max()) == 65535.0
    stored = mt.io.load(tmp_path / "a.png", dtype=None)  # torch has no full uint16: int32
    assert str(stored.dtype) == "torch.int32" and int(stored[0, 0]) == 65535


def test_spacing_given_scales_the_affine(tmp_path):
    Image.fromarray(_gray()).save(tmp_path / "a.png")
    image = mt.io.load(tmp_path / "a.png", spacing=(0.2, 0.3))
    np.testing.assert_allclose(image.affine.numpy(), np.diag([0.2, 0.3, 1.0, 1.0]))
    assert image.meta["spacing"] == (0.2, 0.3) and image.meta["spacing_known"] is True
    assert mt.io.load(tmp_path / "a.png", spacing=0.143).meta["spacing"] == (0.143, 0.143)
    for bad in (0, -1.0, (0.1, 0.2, 0.3), "x", float("nan")):
        with pytest.raises(ConfigError, match="spacing"):
            mt.io.load(tmp_path / "a.png", spacing=bad)
    with pytest.raises(ConfigError, match="DICOM or NIfTI"):
        mt.io.load(PYDICOM_TEST_FILES / "CT_small.dcm", spacing=0.5)


def test_rgb_stays_rgb_channel_last_and_gray_saved_as_rgb_is_gray(tmp_path):
    colour = np.stack([_gray(), _gray()[::-1], np.full((6, 5), 9, np.uint8)], axis=-1)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    image = mt.io.load(tmp_path / "colour.png")
    assert tuple(image.shape) == (5, 6, 3) and image.meta["original_channel_dim"] == -1
    np.testing.assert_array_equal(image.numpy(), colour.transpose(1, 0, 2))
    gray = np.repeat(_gray()[..., None], 3, axis=-1)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(gray).save(tmp_path / "gray.jpg", quality=95)
    for name in ("gray.png", "gray.jpg"):
        image = mt.io.load(tmp_path / name)
        assert tuple(image.shape) == (5, 6), name
        assert "RGB with three equal channels: read as grayscale" in image.meta["intensity_notes"]
    np.testing.assert_array_equal(mt.io.load(tmp_path / "gray.png").numpy(), _gray().T)


def test_alpha_is_dropped_with_a_note(tmp_path):
    rgba = np.zeros((6, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = _gray(), 3, 4, 128
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    image = mt.io.load(tmp_path / "rgba.png")
    assert tuple(image.shape) == (5, 6, 3)
    np.testing.assert_array_equal(image.numpy()[..., 0], _gray().T)
    assert "alpha channel dropped" in image.meta["intensity_notes"]
    Image.fromarray(np.stack([_gray(), np.full((6, 5), 255, np.uint8)], -1), "LA").save(
        tmp_path / "la.png"
    )
    image = mt.io.load(tmp_path / "la.png")
    np.testing.assert_array_equal(image.numpy(), _gray().T)
    assert "alpha channel dropped" in image.meta["intensity_notes"]


def test_palettes_give_grays_or_indices_and_1_bit_gives_0_and_1(tmp_path):
    indices = (np.arange(30).reshape(6, 5) % 3).astype(np.uint8)
    gray_palette = Image.fromarray(indices, "P")
    gray_palette.putpalette([0, 0, 0, 100, 100, 100, 200, 200, 200])
    gray_palette.save(tmp_path / "gray.png")
    image = mt.io.load(tmp_path / "gray.png")
    np.testing.assert_array_equal(image.numpy(), (indices * 100).T)
    label_map = Image.fromarray(indices, "P")
    label_map.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])  # VOC-style colours
    label_map.save(tmp_path / "labels.png")
    image = mt.io.load(tmp_path / "labels.png", dtype=None)
    np.testing.assert_array_equal(image.numpy(), indices.T)
    assert any("indices are kept" in n for n in image.meta["intensity_notes"])
    Image.fromarray(indices == 1).save(tmp_path / "bits.png")  # mode "1"
    np.testing.assert_array_equal(mt.io.load(tmp_path / "bits.png").numpy(), (indices == 1).T)


def test_tiff_8_16_bit_gray_and_16_bit_rgb(tmp_path):
    gray16 = _gray(dtype=np.uint16, scale=1999)
    tifffile.imwrite(tmp_path / "g.tif", gray16)
    np.testing.assert_array_equal(mt.io.load(tmp_path / "g.tif").numpy(), gray16.T)
    tifffile.imwrite(tmp_path / "g8.tiff", _gray())
    np.testing.assert_array_equal(mt.io.load(tmp_path / "g8.tiff").numpy(), _gray().T)
    rgb16 = np.stack([gray16, gray16 // 2, gray16 // 3], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb16, photometric="rgb")
    tifffile.imwrite(
        tmp_path / "planar.tif",
        np.moveaxis(rgb16, -1, 0),
        photometric="rgb",
        planarconfig="separate",
    )
    for name in ("rgb.tif", "planar.tif"):
        image = mt.io.load(tmp_path / name)
        assert image.meta["stored_dtype"] == "uint16"
        np.testing.assert_array_equal(image.numpy(), rgb16.transpose(1, 0, 2))


def test_tiff_min_is_white_is_inverted_like_monochrome1(tmp_path):
    pixels = _gray(dtype=np.uint16)
    tifffile.imwrite(tmp_path / "mw.tif", pixels, photometric="miniswhite")
    image = mt.io.load(tmp_path / "mw.tif")
    np.testing.assert_array_equal(image.numpy(), (65535 - pixels).T)
    assert any("MinIsWhite" in n for n in image.meta["intensity_notes"])


def test_lzw_tiff_without_imagecodecs_reads_through_pillow(tmp_path):
    pixels = _gray(dtype=np.uint16, scale=999)
    Image.fromarray(pixels).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    image = mt.io.load(tmp_path / "lzw.tif")
    np.testing.assert_array_equal(image.numpy(), pixels.T)
    assert image.meta["format"] == "tiff"


def test_resolution_tags_are_reported_not_used(tmp_path):
    Image.fromarray(_gray()).save(tmp_path / "a.png", dpi=(254, 254))
    image = mt.io.load(tmp_path / "a.png")
    assert image.meta["spacing"] == (1.0, 1.0)
    assert any("0.1 x 0.1 mm per pixel" in n for n in image.meta["geometry_notes"])


def test_a_png_without_suffix_is_recognised(tmp_path):
    Image.fromarray(_gray()).save(tmp_path / "IMG0001", format="PNG")
    np.testing.assert_array_equal(mt.io.load(tmp_path / "IMG0001").numpy(), _gray().T)


def test_image_info_matches_load(tmp_path):
    Image.fromarray(_gray(dtype=np.uint16)).save(tmp_path / "a.png")
    Image.fromarray(np.repeat(_gray()[..., None], 3, -1)).save(tmp_path / "rgb_gray.png")
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((6, 5, 3), np.uint8), photometric="rgb")
    colour = (np.ones((6, 5, 3)) * [1, 2, 3]).astype(np.uint8)
    tifffile.imwrite(tmp_path / "d.tif", colour, photometric="rgb")
    for name, dtype in [("a.png", "uint16"), ("rgb_gray.png", "uint8"), ("d.tif", "uint8")]:
        info = mt.io.image_info(tmp_path / name)
        image = mt.io.load(tmp_path / name)
        assert info.shape == tuple(image.shape) and info.dtype == dtype, name
        np.testing.assert_array_equal(info.affine, image.affine.numpy())
        assert info.format in ("png", "tiff")


def test_reader_and_loadimaged_take_images(tmp_path):
    from monai.transforms import LoadImaged

    colour = np.stack([_gray(), _gray() // 2, _gray() // 3], axis=-1)
    Image.fromarray(colour).save(tmp_path / "c.png")
    Image.fromarray(_gray()).save(tmp_path / "g.jpeg", quality=100)
    reader = mt.io.MedTransferReader()
    assert reader.verify_suffix(str(tmp_path / "c.png"))
    assert reader.verify_suffix([tmp_path / "g.jpeg", tmp_path / "x.TIFF"])
    loader = LoadImaged(["image"], reader=reader, ensure_channel_first=True)
    assert tuple(loader({"image": str(tmp_path / "c.png")})["image"].shape) == (3, 5, 6)
    assert tuple(loader({"image": str(tmp_path / "g.jpeg")})["image"].shape) == (1, 5, 6)


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_truncated_and_damaged_files_raise_raster_errors_naming_them(tmp_path, kind):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / f"a.{kind}")
    data = (tmp_path / f"a.{kind}").read_bytes()
    (tmp_path / f"cut.{kind}").write_bytes(data[: len(data) // 2])
    with pytest.raises(RasterError, match="cut") as err:
        mt.io.load(tmp_path / f"cut.{kind}")
    assert "truncated" in str(err.value) or "damaged" in str(err.value)
    (tmp_path / f"junk.{kind}").write_bytes(b"not an image at all" * 10)
    with pytest.raises(RasterError, match=f"junk.{kind}.*not a"):
        mt.io.load(tmp_path / f"junk.{kind}")


def test_refused_layouts_say_what_to_do_and_dicom_named_png_is_dicom(tmp_path):
    shutil.copy(PYDICOM_TEST_FILES / "CT_small.dcm", tmp_path / "ct.png")
    assert mt.io.load(tmp_path / "ct.png").meta["modality"] == "CT"  # DICOM whatever its name
    tifffile.imwrite(
        tmp_path / "stack.tif", np.zeros((3, 6, 5), np.uint16), photometric="minisblack"
    )
    with pytest.raises(RasterError, match="3 pages"):
        mt.io.load(tmp_path / "stack.tif")
    frames = [Image.fromarray(_gray()), Image.fromarray(_gray()[::-1].copy())]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    with pytest.raises(RasterError, match="animated PNG"):
        mt.io.load(tmp_path / "anim.png")
    tifffile.imwrite(tmp_path / "cmyk.tif", np.zeros((6, 5, 4), np.uint8), photometric="separated")
    with pytest.raises(RasterError, match="photometric interpretation 5"):
        mt.io.load(tmp_path / "cmyk.tif")


def test_16_bit_colour_png_is_refused_not_reduced(tmp_path):
    import struct
    import zlib

    rows = b"".join(b"\x00" + np.full(5 * 3, 4000, ">u2").tobytes() for _ in range(6))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 5, 6, 16, 2, 0, 0, 0)  # 16-bit RGB
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
    (tmp_path / "rgb16.png").write_bytes(png + chunk(b"IEND", b""))
    with pytest.raises(RasterError, match="16-bit RGB PNG.*16-bit TIFF"):
        mt.io.load(tmp_path / "rgb16.png")
