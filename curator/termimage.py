"""Images in a terminal: kitty, iTerm2 and sixel inline graphics, or colour half-blocks.

    detect(env)            the mode from the environment: 'kitty', 'iterm', 'sixel' or 'blocks'
    query_sixel(fd)        ask the terminal (DA1) whether it draws sixels
    fit(w, h, box_w, box_h) the largest size with the same aspect ratio inside a box
    render(data, mode, cols, rows, cell) -> Frame   bytes to write, and the cells they cover

Every renderer first decodes the image at reduced scale (JPEG draft mode), applies
the EXIF orientation and scales it to the area, so a 1024x768 photo costs a few
milliseconds whatever the mode. The half-block renderer is vectorised with numpy:
each character cell shows two pixels (the upper half block takes the top pixel as
its foreground colour, the cell background is the bottom pixel), written as
24-bit colour escapes with leading zeros stripped by a boolean mask.
"""

from __future__ import annotations

import base64
import io
import os
import re
import select
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

MODES = ("kitty", "iterm", "sixel", "blocks")
DEFAULT_CELL = (10, 20)  # pixels per character cell when the terminal does not say


@dataclass(frozen=True)
class Frame:
    data: bytes  # escape sequences to write at the cursor
    cols: int  # cells covered
    rows: int


def detect(env: Mapping[str, str]) -> str:
    """The graphics mode the environment announces; 'blocks' when it announces none.

    Inside tmux or screen, inline graphics need pass-through that is rarely set up,
    so half-blocks are chosen there unless a mode is forced.
    """
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    if env.get("TMUX") or term.startswith(("screen", "tmux")):
        return "blocks"
    if env.get("KITTY_WINDOW_ID") or term == "xterm-kitty" or program == "ghostty" or term == "xterm-ghostty":
        return "kitty"
    if program in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm"
    if "sixel" in term or term.split("-")[0] in ("mlterm", "foot", "yaft", "contour"):
        return "sixel"
    return "blocks"


def query_sixel(fd: int, timeout: float = 0.15) -> bool:
    """Send DA1 (ESC [ c) and look for attribute 4 (sixel) in the reply.

    ``fd`` must be the terminal in non-canonical mode. A terminal that does not answer
    within ``timeout`` counts as no.
    """
    os.write(fd, b"\x1b[c")
    reply = b""
    while not reply.endswith(b"c"):
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            break
        reply += os.read(fd, 64)
    match = re.search(rb"\x1b\[\?([0-9;]*)c", reply)
    return bool(match) and b"4" in match.group(1).split(b";")  # type: ignore[union-attr]


def fit(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    scale = min(box_w / width, box_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode(data: bytes, box: tuple[int, int], *, upscale: bool = True) -> Image.Image:
    """Decode ``data`` as RGB, oriented, scaled to fit ``box`` (pixels); never enlarged
    when ``upscale`` is false."""
    opened = Image.open(io.BytesIO(data))
    rotated = opened.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    # JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale: most of the speed.
    opened.draft("RGB", (box[1], box[0]) if rotated else box)
    img = ImageOps.exif_transpose(opened).convert("RGB")
    size = fit(img.width, img.height, *box)
    if not upscale and size[0] > img.width:
        return img
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0) if size != img.size else img


def render(data: bytes, mode: str, cols: int, rows: int, cell: tuple[int, int] = DEFAULT_CELL) -> Frame:
    """The frame for ``data`` in ``mode`` inside ``cols`` x ``rows`` cells.

    kitty and iTerm2 get the image at most at its own resolution and are told how many
    cells to fill (the terminal scales it); sixel has no scaling, so it gets the pixels.
    """
    if mode == "blocks":
        img = decode(data, (cols, rows * 2))
        return Frame(halfblocks(np.asarray(img)), img.width, (img.height + 1) // 2)
    box = (cols * cell[0], rows * cell[1])
    img = decode(data, box, upscale=mode == "sixel")
    shown = fit(img.width, img.height, *box)
    covered = (min(cols, -(-shown[0] // cell[0])), min(rows, -(-shown[1] // cell[1])))
    if mode == "kitty":
        return Frame(kitty(img, covered), *covered)
    if mode == "iterm":
        return Frame(iterm(img, covered), *covered)
    if mode == "sixel":
        return Frame(sixel(img), *covered)
    raise ValueError(f"unknown graphics mode {mode!r}")


# ---------------------------------------------------------------------------------------------
# Half blocks

_DIGITS = np.array([[ord(c) for c in f"{i:03d}"] for i in range(256)], dtype=np.uint8)
_KEEP = np.array([[i >= 100, i >= 10, True] for i in range(256)], dtype=bool)
_CELL = b"\x1b[38;2;000;000;000;48;2;000;000;000m\xe2\x96\x80"  # fg = top pixel, bg = bottom
_SLOTS = (7, 11, 15, 24, 28, 32)  # where the six 3-digit numbers start in _CELL
_EOL = b"\x1b[0m\r\n"


def halfblocks(rgb: np.ndarray) -> bytes:
    """Half-block escapes for an (H, W, 3) uint8 array; one text row per two pixel rows."""
    if rgb.shape[0] % 2:
        rgb = np.concatenate([rgb, np.zeros_like(rgb[:1])], axis=0)  # pad with black
    top, bottom = rgb[0::2], rgb[1::2]
    rows, cols = top.shape[:2]
    width = len(_CELL)
    out = np.empty((rows, cols, width), dtype=np.uint8)
    out[:] = np.frombuffer(_CELL, dtype=np.uint8)
    keep = np.ones((rows, cols, width), dtype=bool)
    channels = (top[..., 0], top[..., 1], top[..., 2], bottom[..., 0], bottom[..., 1], bottom[..., 2])
    for start, values in zip(_SLOTS, channels, strict=True):
        out[..., start:start + 3] = _DIGITS[values]
        keep[..., start:start + 3] = _KEEP[values]
    eol = np.frombuffer(_EOL, dtype=np.uint8)
    lines = np.concatenate([out.reshape(rows, -1), np.broadcast_to(eol, (rows, len(eol)))], axis=1)
    mask = np.concatenate([keep.reshape(rows, -1), np.ones((rows, len(eol)), dtype=bool)], axis=1)
    return lines[mask].tobytes()


# ---------------------------------------------------------------------------------------------
# Inline graphics protocols


def kitty(img: Image.Image, cells: tuple[int, int]) -> bytes:
    """Kitty graphics protocol: raw RGB, zlib-compressed (o=z), in 4096-byte base64 chunks.

    q=2 keeps the terminal from answering (an answer would arrive as keystrokes).
    Raw RGB + zlib level 1 is several times faster to build than a PNG.
    """
    payload = base64.standard_b64encode(zlib.compress(img.tobytes(), 1))
    chunks = [payload[i:i + 4096] for i in range(0, len(payload), 4096)] or [b""]
    parts = []
    for i, chunk in enumerate(chunks):
        more = 1 if i < len(chunks) - 1 else 0
        head = (f"a=T,f=24,o=z,s={img.width},v={img.height},c={cells[0]},r={cells[1]},q=2,m={more}"
                if i == 0 else f"m={more}")
        parts.append(b"\x1b_G" + head.encode() + b";" + chunk + b"\x1b\\")
    return b"".join(parts)


KITTY_CLEAR = b"\x1b_Ga=d,q=2\x1b\\"


def iterm(img: Image.Image, cells: tuple[int, int]) -> bytes:
    """iTerm2 inline image (OSC 1337): the image as a JPEG, drawn over ``cells`` (columns, rows)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88)
    data = buf.getvalue()
    head = f"\x1b]1337;File=inline=1;size={len(data)};width={cells[0]};height={cells[1]};"
    return head.encode() + b"preserveAspectRatio=1:" + base64.standard_b64encode(data) + b"\x07"


def sixel(img: Image.Image, colors: int = 64) -> bytes:
    """DEC sixel: a palette of ``colors`` and one line per colour per six-pixel band."""
    quantized = img.quantize(colors=colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    index = np.asarray(quantized, dtype=np.intp)
    palette = np.array(quantized.getpalette() or [], dtype=np.int64).reshape(-1, 3)
    height, width = index.shape
    used = np.unique(index)
    parts = [f'\x1bPq"1;1;{width};{height}'.encode()]
    for c in used:
        r, g, b = (palette[c] * 100 + 127) // 255
        parts.append(f"#{c};2;{r};{g};{b}".encode())
    # bits[band, colour, x]: which of the band's six rows have this colour at x.
    bands, ncolors = -(-height // 6), int(index.max()) + 1
    padded = np.full((bands * 6, width), ncolors, dtype=np.intp)  # an unused colour below the image
    padded[:height] = index
    bits = np.zeros((bands, ncolors + 1, width), dtype=np.uint8)
    band_ids, columns = np.arange(bands)[:, None], np.arange(width)[None, :]
    for r in range(6):
        bits[band_ids, padded[r::6], columns] += np.uint8(1 << r)  # one colour per pixel: no repeats
    present = np.asarray(bits[:, :ncolors].any(axis=2))
    chars = bits + np.uint8(63)
    body = []
    for band in range(bands):
        lines = [b"#%d" % c + chars[band, c].tobytes() for c in np.flatnonzero(present[band])]
        body.append(b"$".join(lines))
    # One pass of run-length encoding over everything: '#n' and '$'/'-' never form runs of 4.
    parts.append(_rle(b"-".join(body) + b"-"))
    parts.append(b"\x1b\\")
    return b"".join(parts)


_RUN = re.compile(rb"(.)\1{3,}")


def _rle(row: bytes) -> bytes:
    return _RUN.sub(lambda m: b"!%d%s" % (len(m.group(0)), m.group(1)), row)
