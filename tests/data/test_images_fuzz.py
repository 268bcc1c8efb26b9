"""Fuzzing the image loader: damaged bytes give an RGB image or a BlastscanError, nothing else.

JPEG and PNG (the dataset's formats) plus TIFF, BMP and WebP, which scan_dataset also accepts;
TIFF is where the fuzzer found Pillow raising TypeError (now a BlastscanError).

`open_rgb` is what every path into the model goes through (scan, training, extract, predict,
the web upload), so any other exception there is a crash on a user's file. Seeded and bounded:
about 10 s in all.
"""

from __future__ import annotations

import io
import random
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from blastscan.data import load_image_array, open_rgb
from blastscan.errors import BlastscanError

pytestmark = pytest.mark.filterwarnings("ignore")  # Pillow warns about corrupt EXIF etc.

FUZZ_SECONDS = 8.0
FUZZ_CASES = 40_000


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (24, 32, 3)).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: exif_transpose runs on damaged EXIF too
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 255, (24, 32)).astype(np.uint8)))
    return {
        "jpeg": _encode(rgb, "JPEG", quality=85),
        "jpeg-progressive-exif": _encode(rgb, "JPEG", progressive=True, exif=exif.tobytes()),
        "jpeg-gray": _encode(rgb.convert("L"), "JPEG"),
        "jpeg-cmyk": _encode(rgb.convert("CMYK"), "JPEG"),
        "png": _encode(rgb, "PNG"),
        "png-exif": _encode(rgb, "PNG", exif=exif.tobytes()),
        "png-rgba": _encode(rgba, "PNG"),
        "png-palette": _encode(rgb.convert("P"), "PNG", transparency=0),
        "png-16bit": _encode(
            Image.fromarray(rng.integers(0, 65535, (24, 32)).astype(np.uint16)), "PNG"
        ),
        # the other formats scan_dataset accepts (.tif/.tiff, .bmp, .webp)
        "tiff": _encode(rgb, "TIFF"),
        "tiff-deflate-exif": _encode(rgb, "TIFF", compression="tiff_deflate", exif=exif.tobytes()),
        "bmp": _encode(rgb, "BMP"),
        "webp": _encode(rgb, "WEBP", quality=80),
    }


SEEDS = _seeds()


def mutate(data: bytes, rng: random.Random) -> bytes:
    """1-8 random edits: byte flips, truncation, inserted junk, 0xFF runs, copied chunks."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if not b:
            b = bytearray(rng.randbytes(rng.randint(1, 16)))
        elif op < 0.45:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.6:
            b = b[: rng.randrange(len(b) + 1)]
        elif op < 0.75:
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op < 0.85:
            i = rng.randrange(len(b))
            b[i : i + 4] = b"\xff\xff\xff\xff"
        else:  # duplicate a stretch elsewhere: repeated markers and chunks
            i, j = rng.randrange(len(b)), rng.randrange(len(b))
            b[j:j] = b[i : i + rng.randint(1, 64)]
    return bytes(b)


def check(data: bytes) -> str:
    """'ok' or 'error'; any exception other than BlastscanError fails the test."""
    try:
        image = open_rgb(data)
    except BlastscanError as exc:
        assert str(exc).startswith("<upload>: ") and "\n" not in str(exc)
        return "error"
    assert image.mode == "RGB" and image.width >= 1 and image.height >= 1
    return "ok"


def test_seeds_decode():
    for name, data in SEEDS.items():
        assert check(data) == "ok", name


def test_open_rgb_on_randomly_damaged_images():
    rng = random.Random(20240607)
    names = sorted(SEEDS)
    outcomes = {"ok": 0, "error": 0}
    start = time.perf_counter()
    for case in range(FUZZ_CASES):
        if time.perf_counter() - start > FUZZ_SECONDS:
            break
        name = rng.choice(names)
        data = mutate(SEEDS[name], rng)
        try:
            outcomes[check(data)] += 1
        except Exception as exc:  # report the reproducer, not just the exception
            pytest.fail(
                f"case {case} from {name}: {type(exc).__name__}: {exc}; bytes {data!r:.300}"
            )
    assert outcomes["ok"] > 50 and outcomes["error"] > 50, outcomes  # both paths exercised


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.sampled_from(sorted(SEEDS)),
    st.integers(0, 10_000),
    st.binary(min_size=0, max_size=48),
    st.integers(0, 64),
)
def test_open_rgb_on_spliced_bytes(name, position, junk, cut):
    """Replace `cut` bytes at `position` (mod length) with arbitrary `junk`."""
    data = SEEDS[name]
    i = position % (len(data) + 1)
    check(data[:i] + junk + data[i + cut :])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.binary(max_size=4096))
def test_open_rgb_on_arbitrary_bytes(data):
    check(data)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(SEEDS)), st.integers(1, 4096))
def test_load_image_array_on_truncated_images(name, keep):
    data = SEEDS[name][:keep]
    try:
        array = load_image_array(data, 32)
    except BlastscanError:
        return
    assert array.shape == (32, 32, 3) and array.dtype == np.uint8


def test_tiff_with_a_text_strip_offset_is_an_error_not_a_type_error():
    """Found by this fuzzer: Pillow raises TypeError when StripOffsets is stored as ASCII."""
    b = bytearray(_encode(Image.new("RGB", (4, 3), (1, 2, 3)), "TIFF"))
    ifd = struct.unpack_from("<I", b, 4)[0]
    for i in range(struct.unpack_from("<H", b, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", b, entry)[0] == 273:  # StripOffsets: LONG -> ASCII
            struct.pack_into("<H", b, entry + 2, 2)
    with pytest.raises(BlastscanError, match="not a readable image"):
        open_rgb(bytes(b))
