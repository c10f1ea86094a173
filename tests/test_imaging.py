"""Decoding and resizing one pair: modes, masks, corrupt files, limits."""

import io

import numpy as np
import pytest
from PIL import Image

from frcunet.core.errors import UserError
from frcunet.data.imaging import binarize_mask, read_image, read_mask, read_pair


def _disc(height=60, width=80):
    yy, xx = np.mgrid[:height, :width]
    return ((yy - height / 2) ** 2 + (xx - width / 2) ** 2) < (height / 3) ** 2


def _save(array, path, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return path


@pytest.mark.parametrize("encoding", ["zero_one", "zero_255", "rgb", "jpeg_noisy"])
def test_masks_in_every_encoding_binarise_to_the_same_disc(tmp_path, encoding):
    disc = _disc()
    if encoding == "zero_one":
        path = _save(disc.astype(np.uint8), tmp_path / "m.png")
    elif encoding == "zero_255":
        path = _save(disc.astype(np.uint8) * 255, tmp_path / "m.png")
    elif encoding == "rgb":
        path = _save(np.repeat(disc[..., None], 3, axis=2).astype(np.uint8) * 255, tmp_path / "m.png")
    else:
        path = _save(disc.astype(np.uint8) * 255, tmp_path / "m.jpg", quality=60)
    mask, original, _ = read_mask(path, (60, 80))
    assert original == (60, 80)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert (mask != disc).mean() < 0.01


def test_downsized_mask_is_binary_with_the_same_area(tmp_path):
    disc = _disc(600, 800)
    mask, _, _ = read_mask(_save(disc.astype(np.uint8) * 255, tmp_path / "m.png"), (64, 64))
    assert set(np.unique(mask)) == {0, 1}
    assert mask.mean() == pytest.approx(disc.mean(), abs=0.01)


def test_binarize_keeps_zero_one_and_thresholds_0_255():
    np.testing.assert_array_equal(binarize_mask(np.array([0, 1, 1, 0], np.uint8)), [0, 1, 1, 0])
    np.testing.assert_array_equal(binarize_mask(np.array([0, 127, 128, 255], np.uint8)), [0, 0, 1, 1])


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "RGB"])
def test_images_of_any_mode_become_rgb(tmp_path, mode):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    converted = rgb.convert(mode)
    path = tmp_path / ("i.jpg" if mode in ("CMYK", "L") else "i.png")
    converted.save(path)
    image, original, digest = read_image(path, (32, 32))
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert original == (40, 48) and len(digest) == 40


def test_draft_decoding_of_a_large_jpeg_matches_a_full_decode(tmp_path):
    yy, xx = np.mgrid[:1536, :2048]
    smooth = np.stack([(xx / 8) % 256, (yy / 6) % 256, ((xx + yy) / 14) % 256], -1).astype(np.uint8)
    path = _save(smooth, tmp_path / "big.jpg", quality=95)
    fast, original, _ = read_image(path, (192, 256))
    full = np.asarray(Image.open(path).convert("RGB").resize((256, 192), Image.Resampling.BICUBIC), np.float64)
    assert original == (1536, 2048)
    assert np.abs(fast - full).mean() < 3.0


def test_corrupt_and_truncated_images_are_named(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\x00definitely not a jpeg")
    with pytest.raises(UserError, match="garbage.jpg"):
        read_image(garbage, (32, 32))
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(buffer, "JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(UserError, match="truncated.jpg.*truncated"):
        read_image(truncated, (32, 32))


def test_mask_of_another_size_is_an_error(tmp_path):
    image = _save(np.zeros((60, 80, 3), np.uint8), tmp_path / "i.png")
    mask = _save(np.zeros((60, 81), np.uint8), tmp_path / "m.png")
    with pytest.raises(UserError, match="81x60 but its image is 80x60"):
        read_pair(image, mask, (32, 32))


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    path = _save(np.zeros((100, 120, 3), np.uint8), tmp_path / "i.png")
    with pytest.raises(UserError, match="120x100 pixels, over the limit"):
        read_image(path, (32, 32), max_pixels=10_000)


def test_a_decompression_bomb_is_named_too_large_with_the_flag_that_decides(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # A PNG header announcing 20000x10000 pixels (a few bytes on disk): Pillow's own bomb check stops it.
    header = struct.pack(">IIBBBBB", 20000, 10000, 1, 0, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(UserError, match="too large to decode .* raise --max-pixels"):
        read_image(bomb, (32, 32))
