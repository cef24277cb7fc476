"""Generated images and workspace helpers shared by the ingest tests."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance

from curator import synthetic

SIZE = (160, 120)


def photo(seed: int, label: str = "alopecia", size: tuple[int, int] = SIZE) -> Image.Image:
    return synthetic.photo(seed, label, size)


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    return synthetic.encode(img, "JPEG", quality=quality)


def png(img: Image.Image) -> bytes:
    return synthetic.encode(img, "PNG")


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def crop(img: Image.Image, fraction: float) -> Image.Image:
    dx, dy = round(img.width * fraction), round(img.height * fraction)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


def brighter(img: Image.Image, factor: float = 1.15) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(factor)


def watermarked(img: Image.Image, text: str = "atlas.example") -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    h = max(8, img.height // 10)
    draw.rectangle([0, img.height - h, img.width // 2, img.height], fill=(255, 255, 255))
    draw.text((2, img.height - h), text, fill=(0, 0, 0))
    return out


def set_ingest_keys(ws_root: Path, **keys: object) -> None:
    """Add/replace keys in curator.toml's [ingest] table (tests need short timeouts and small caps)."""
    toml = ws_root / "curator.toml"
    text = toml.read_text()
    for key, value in keys.items():
        rendered = str(value).lower() if isinstance(value, bool) else repr(value)
        rendered = rendered.replace("'", '"')
        line = f"{key} = {rendered}"
        pattern = re.compile(rf"^{key}\s*=.*$", re.M)
        if pattern.search(text):
            text = pattern.sub(line, text)
        else:
            text = text.replace("[ingest]\n", f"[ingest]\n{line}\n", 1)
    toml.write_text(text)
