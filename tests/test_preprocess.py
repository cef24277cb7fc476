"""Preprocessing: each step does what it says, outputs carry no metadata, bytes are deterministic."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from curator import config, preprocess, synthetic
from curator.config import PreprocessConfig
from curator.errors import ConfigError, ReleaseError


def run(pixels: np.ndarray, *steps: dict[str, Any]) -> np.ndarray:
    return preprocess.apply_steps(pixels, preprocess.normalize_steps(steps))


def photo(seed: int = 1, size: tuple[int, int] = (160, 120), label: str = "psoriasis") -> np.ndarray:
    return np.array(synthetic.photo(seed, label, size))


def lum_std(pixels: np.ndarray) -> float:
    import cv2

    return float(cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB)[..., 0].std())


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [{"op": "resize"}, {"op": "denoise", "method": "gauss"}],
            "curator.toml: 'preprocess.steps[1].method' must be one of none, median, bilateral, nlmeans",
        ),
        (
            [{"op": "blur"}],
            "curator.toml: 'preprocess.steps[0].op' must be one of resize, denoise, equalize, enhance",
        ),
        ([{"size": 224}], "curator.toml: missing key 'preprocess.steps[0].op'"),
        ([{"op": "equalize"}], "curator.toml: missing key 'preprocess.steps[0].method'"),
        (
            [{"op": "resize", "mode": "crop"}],
            "curator.toml: 'preprocess.steps[0].mode' must be one of longest, pad-square",
        ),
        (
            [{"op": "resize", "size": 8}],
            "curator.toml: 'preprocess.steps[0].size' must be an integer from 16 to 4096",
        ),
        (
            [{"op": "denoise", "method": "median", "ksize": 4}],
            "curator.toml: 'preprocess.steps[0].ksize' must be an odd integer from 3 to 15",
        ),
        (
            [{"op": "denoise", "method": "median", "strength": 5}],
            "curator.toml: unknown key 'preprocess.steps[0].strength' (denoise median takes ksize)",
        ),
        (
            [{"op": "equalize", "method": "global", "clip_limit": 2}],
            "curator.toml: unknown key 'preprocess.steps[0].clip_limit'"
            " (equalize global takes no parameters)",
        ),
        (
            [{"op": "enhance", "method": "gamma", "gamma": True}],
            "curator.toml: 'preprocess.steps[0].gamma' must be a number from 0.1 to 5",
        ),
        (
            [{"op": "equalize", "method": "clahe", "clip_limit": "high"}],
            "curator.toml: 'preprocess.steps[0].clip_limit' must be a number from 0.5 to 40",
        ),
    ],
)
def test_bad_steps_name_the_key(steps: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        preprocess.check_steps(steps)
    assert str(info.value) == message
    assert info.value.key == message.split("'")[1]


def test_bad_steps_fail_when_the_config_loads(tmp_path: Path) -> None:
    toml = tmp_path / "curator.toml"
    toml.write_text(
        '[dataset]\nname = "x"\nclasses = ["a", "b"]\n\n'
        '[[preprocess.steps]]\nop = "resize"\nsize = 128\n\n'
        '[[preprocess.steps]]\nop = "denoise"\nmethod = "wavelet"\n'
    )
    with pytest.raises(ConfigError, match=r"^curator.toml: 'preprocess.steps\[1\].method' must be one of "):
        config.load(toml)


def test_default_steps_are_valid_and_hash_ignores_spelled_out_defaults() -> None:
    defaults = PreprocessConfig().steps
    preprocess.check_steps(defaults)
    short: list[dict[str, Any]] = [{"op": "resize"}, {"op": "equalize", "method": "clahe"}]
    spelled: list[dict[str, Any]] = [
        {"op": "resize", "size": 224, "mode": "longest"},
        {"op": "equalize", "method": "clahe", "tile": 8},
    ]
    assert preprocess.steps_hash(short) == preprocess.steps_hash(spelled)
    changed: list[dict[str, Any]] = [{"op": "resize", "size": 256}, {"op": "equalize", "method": "clahe"}]
    assert preprocess.steps_hash(short) != preprocess.steps_hash(changed)
    reordered: list[dict[str, Any]] = [{"op": "equalize", "method": "clahe"}, {"op": "resize"}]
    assert preprocess.steps_hash(short) != preprocess.steps_hash(reordered)


# --- each step's effect -------------------------------------------------------------------


def test_resize_longest_keeps_aspect_both_ways() -> None:
    assert run(photo(size=(640, 480)), {"op": "resize", "size": 224}).shape == (168, 224, 3)
    assert run(photo(size=(100, 200)), {"op": "resize", "size": 224}).shape == (224, 112, 3)


def test_resize_pad_square_centres_on_black() -> None:
    out = run(photo(size=(200, 100)), {"op": "resize", "size": 64, "mode": "pad-square"})
    assert out.shape == (64, 64, 3)
    assert out[:16].max() == 0 and out[48:].max() == 0  # 64x32 image centred: 16 black rows each side
    assert out[16:48].mean() > 50


def test_median_removes_salt_noise() -> None:
    rng = np.random.default_rng(0)
    flat = np.full((120, 160, 3), 120, dtype=np.uint8)
    salt = rng.random((120, 160)) < 0.03
    flat[salt] = 255
    out = run(flat, {"op": "denoise", "method": "median", "ksize": 3})
    assert int((flat == 255).all(axis=2).sum()) > 400
    assert int((out == 255).all(axis=2).sum()) == 0


@pytest.mark.parametrize("method", ["nlmeans", "bilateral"])
def test_smoothing_denoisers_reduce_gaussian_noise(method: str) -> None:
    rng = np.random.default_rng(1)
    noisy = np.clip(120 + rng.normal(0, 8, (120, 160, 3)), 0, 255).astype(np.uint8)
    out = run(noisy, {"op": "denoise", "method": method})
    assert out.std() < 0.6 * noisy.std()
    assert abs(float(out.mean()) - float(noisy.mean())) < 2


def test_denoise_none_is_identity() -> None:
    img = photo()
    assert np.array_equal(run(img, {"op": "denoise", "method": "none"}), img)


@pytest.mark.parametrize("method", ["clahe", "global"])
def test_equalize_raises_contrast_of_a_dull_image(method: str) -> None:
    # a photo squeezed into a narrow band of grey levels
    dull = (photo().astype(np.float32) * 0.2 + 100).astype(np.uint8)
    out = run(dull, {"op": "equalize", "method": method})
    assert lum_std(out) > 2 * lum_std(dull)


def test_equalize_works_on_luminance_and_keeps_hue() -> None:
    # a reddish gradient: equalizing L must keep it red, not turn it grey or blue
    ramp = np.linspace(90, 130, 160, dtype=np.float32)[None, :].repeat(120, axis=0)
    img = np.stack([ramp + 40, ramp * 0.6, ramp * 0.5], axis=2).astype(np.uint8)
    out = run(img, {"op": "equalize", "method": "clahe", "clip_limit": 4.0}).astype(int)
    assert (out[..., 0] >= out[..., 1]).mean() > 0.99 and (out[..., 1] >= out[..., 2] - 2).mean() > 0.99


def test_unsharp_mask_sharpens_edges() -> None:
    import cv2

    img = photo()
    out = run(img, {"op": "enhance", "method": "unsharp", "amount": 1.0, "radius": 1.0})

    def sharpness(a: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())

    assert sharpness(out) > 1.5 * sharpness(img)


def test_gamma_above_one_brightens_and_keeps_black_and_white() -> None:
    img = np.array([[[0, 64, 255]]], dtype=np.uint8).repeat(4, axis=0).repeat(4, axis=1)
    out = run(img, {"op": "enhance", "method": "gamma", "gamma": 2.0})
    assert out[0, 0].tolist() == [0, 128, 255]


# --- outputs: metadata, orientation, determinism ------------------------------------------


def _tagged_jpeg() -> tuple[bytes, Image.Image]:
    """A 160x80 JPEG, left half red, tagged with orientation 6, GPS, an ICC profile and a comment."""
    img = np.full((80, 160, 3), 200, dtype=np.uint8)
    img[:, :80] = (220, 30, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "CameraMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (40.0, 26.0, 46.0), 3: "W", 4: (79.0, 58.0, 56.0)})
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=95, exif=exif, icc_profile=icc, comment=b"patient 17")
    data = buf.getvalue()
    source = Image.open(io.BytesIO(data))
    assert source.getexif().get_ifd(0x8825) and source.info.get("icc_profile")  # the test input is tagged
    return data, ImageOps.exif_transpose(source).convert("RGB")


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return chunks


def test_png_output_has_no_metadata_and_is_upright() -> None:
    data, upright = _tagged_jpeg()
    out = preprocess.run_many([("a" * 64, data)], PreprocessConfig(steps=()), workers=1)["a" * 64]
    assert set(_png_chunks(out)) == {b"IHDR", b"IDAT", b"IEND"}
    img = Image.open(io.BytesIO(out))
    assert img.info == {} and not img.getexif()
    pixels = np.array(img)
    assert pixels.shape == (160, 80, 3)  # portrait: the orientation tag was applied
    assert pixels[:70, :, 0].mean() > 200 and pixels[90:, :, 0].mean() < 210  # red half on top
    assert np.array_equal(pixels, np.array(upright))


def test_jpeg_output_has_no_metadata_and_is_upright() -> None:
    data, upright = _tagged_jpeg()
    cfg = PreprocessConfig(steps=({"op": "resize", "size": 64},), format="jpeg", jpeg_quality=90)
    out = preprocess.run_many([("a" * 64, data)], cfg, workers=1)["a" * 64]
    img = Image.open(io.BytesIO(out))
    assert img.format == "JPEG" and img.size == (32, 64)
    assert not img.getexif() and "icc_profile" not in img.info and "comment" not in img.info
    for marker in (b"\xff\xe1", b"\xff\xe2", b"\xff\xfe"):  # APP1 (Exif/XMP), APP2 (ICC), COM
        assert marker not in out[: out.index(b"\xff\xda")]  # any header segment before the scan


def test_run_many_is_deterministic_across_runs_and_worker_counts() -> None:
    items = [
        (f"{i:064x}", synthetic.encode(synthetic.photo(i, label, (160, 120))))
        for i, label in enumerate(["alopecia", "psoriasis", "folliculitis"] * 2)
    ]
    cfg = PreprocessConfig()  # the default chain
    done: list[int] = []
    one = preprocess.run_many(items, cfg, workers=1)
    two = preprocess.run_many(items, cfg, workers=2, on_progress=done.append)
    again = preprocess.run_many(items, cfg, workers=1)
    assert list(one) == [sha for sha, _ in items] == list(two)
    assert one == two == again
    assert sum(done) == len(items)
    assert len(set(one.values())) == len(items)
    assert Image.open(io.BytesIO(one[items[0][0]])).size == (224, 168)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_undecodable_image_names_its_sha(workers: int) -> None:
    good = synthetic.encode(synthetic.photo(3, "alopecia", (96, 64)))
    items = [("a" * 64, good), ("b" * 64, b"not an image at all")]
    with pytest.raises(ReleaseError, match=r"^preprocess: image b{64} cannot be processed \(") as info:
        preprocess.run_many(items, PreprocessConfig(), workers=workers)
    assert info.value.sha256 == "b" * 64


@pytest.mark.parametrize(
    ("mode", "fmt"), [("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("LA", "PNG")]
)
def test_any_image_mode_comes_out_rgb(mode: str, fmt: str) -> None:
    img = Image.fromarray(photo(size=(96, 64))).convert(mode)
    out = preprocess.run_many([("a" * 64, synthetic.encode(img, fmt))], PreprocessConfig(), workers=1)[
        "a" * 64
    ]
    result = Image.open(io.BytesIO(out))
    assert result.mode == "RGB" and result.size == (224, 149)
