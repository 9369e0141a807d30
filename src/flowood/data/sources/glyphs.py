"""``glyphs``: notMNIST-style letters A-J rendered from fonts available offline.

**A stand-in for notMNIST, not notMNIST.** The published notMNIST is letters A-J cut from ~hundreds of web
fonts; here each sample is one of the letters A-J rendered with one of the TrueType faces the machine has:
matplotlib's bundled DejaVu, STIX and Computer Modern faces (always present with matplotlib) plus Debian's
``fonts-dejavu`` files under ``/usr/share/fonts/truetype/dejavu`` when installed (``system_fonts=False`` uses
matplotlib's faces only, for results that do not depend on the system). Faces that cannot draw the ten
letters (symbol and size-variant fonts) are left out automatically.

Each glyph is rendered large, cropped to its ink, scaled so its longer side is ``s`` px (``s`` uniform in
18..26), optionally stretched, and pasted at the centre of a black 28x28 canvas shifted by up to +-2 px; white
ink on black as in notMNIST. Font, letter, size, stretch and shift come from a fixed per-split generator
(``train``: 10,000 samples, ``test``: 2,000; ``count=`` overrides), so the same machine gives the same images
every time; labels A=0 ... J=9, balanced.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from flowood.data.base import ArrayDataset
from flowood.data.locate import Root
from flowood.data.registry import Source, register
from flowood.errors import DatasetError

LETTERS = "ABCDEFGHIJ"
SPLIT_SIZES = {"train": 10_000, "test": 2_000}
_SPLIT_SALT = {"train": 0, "test": 1}
SYSTEM_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
_RENDER_PX = 64
#: Faces whose code points A-J are not letters (big delimiters, symbol variants) or that only draw boxes.
EXCLUDED_FONTS = ("cmex10", "STIXSiz", "STIXNonUni", "LastResort")


def candidate_fonts(system_fonts: bool = True) -> list[Path]:
    """TrueType files considered, sorted by file name (matplotlib's first, then system DejaVu)."""
    import matplotlib

    mpl_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = sorted(mpl_dir.glob("*.ttf"))
    if system_fonts and SYSTEM_FONT_DIR.is_dir():
        have = {p.name for p in fonts}
        fonts += sorted(p for p in SYSTEM_FONT_DIR.glob("*.ttf") if p.name not in have)
    return fonts


def _render_raw(font_path: Path, letter: str):
    """Render ``letter`` at 64 px; returns the ink-cropped grey array or None if nothing was drawn."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), _RENDER_PX)
    canvas = Image.new("L", (3 * _RENDER_PX, 3 * _RENDER_PX), 0)
    ImageDraw.Draw(canvas).text((_RENDER_PX // 2, _RENDER_PX // 2), letter, fill=255, font=font)
    box = canvas.getbbox()
    if box is None:
        return None
    return np.asarray(canvas.crop(box), dtype=np.uint8)


@functools.lru_cache(maxsize=4)
def usable_fonts(system_fonts: bool = True) -> tuple[tuple[Path, tuple[np.ndarray, ...]], ...]:
    """Fonts that draw ten distinct, non-empty letters A-J, with their cropped 64 px renderings."""
    out = []
    for path in candidate_fonts(system_fonts):
        if path.name.startswith(EXCLUDED_FONTS):
            continue
        try:
            glyphs = [_render_raw(path, letter) for letter in LETTERS]
        except OSError:
            continue
        if any(g is None or min(g.shape) < 3 for g in glyphs):
            continue
        keys = {(g.shape, g.tobytes()) for g in glyphs}
        if len(keys) < len(LETTERS):  # one 'missing glyph' box for every letter: not a Latin font
            continue
        if any(g.shape[0] < 0.4 * _RENDER_PX for g in glyphs):
            continue  # tiny marks (symbol fonts) rather than capital letters
        out.append((path, tuple(glyphs)))
    return tuple(out)


def _place(glyph: np.ndarray, size: int, stretch: float, dx: int, dy: int) -> np.ndarray:
    from PIL import Image

    h, w = glyph.shape
    scale = size / max(h, w)
    nh = max(1, min(28, round(h * scale)))
    nw = max(1, min(28, round(w * scale * stretch)))
    small = np.asarray(Image.fromarray(glyph).resize((nw, nh), Image.Resampling.LANCZOS), dtype=np.uint8)
    out = np.zeros((28, 28), dtype=np.uint8)
    top = min(max(0, (28 - nh) // 2 + dy), 28 - nh)
    left = min(max(0, (28 - nw) // 2 + dx), 28 - nw)
    out[top : top + nh, left : left + nw] = small
    return out


@functools.lru_cache(maxsize=8)
def _render_split(split: str, count: int, system_fonts: bool) -> tuple[np.ndarray, np.ndarray, int]:
    fonts = usable_fonts(system_fonts)
    if not fonts:
        raise DatasetError("glyphs: no usable TrueType font found (matplotlib's bundled fonts are missing)")
    rng = np.random.default_rng([0x61F, _SPLIT_SALT[split]])
    labels = np.arange(count) % len(LETTERS)
    rng.shuffle(labels)
    font_idx = rng.integers(0, len(fonts), size=count)
    sizes = rng.integers(18, 27, size=count)
    stretch = rng.uniform(0.8, 1.2, size=count)
    shifts = rng.integers(-2, 3, size=(count, 2))
    images = np.empty((count, 1, 28, 28), dtype=np.uint8)
    for i in range(count):
        glyph = fonts[font_idx[i]][1][labels[i]]
        images[i, 0] = _place(glyph, int(sizes[i]), float(stretch[i]), int(shifts[i, 0]), int(shifts[i, 1]))
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels.astype(np.int64), len(fonts)


def load_glyphs(
    name: str,
    split: str,
    root: object = None,
    download: bool = False,
    *,
    count: int | None = None,
    system_fonts: bool = True,
) -> ArrayDataset:
    """Render the ``split`` (``train``/``test``) of the glyph stand-in: uint8 (N, 1, 28, 28), labels A=0..J=9."""
    n = SPLIT_SIZES[split] if count is None else int(count)
    if n <= 0:
        raise DatasetError(f"{name}: count must be positive, got {n}")
    images, labels, nfonts = _render_split(split, n, bool(system_fonts))
    src = (
        f"rendered from {nfonts} fonts ({'matplotlib + system DejaVu' if system_fonts else 'matplotlib'}); "
        "stand-in for notMNIST"
    )
    return ArrayDataset(
        images.copy(), labels.copy(), kind="image", name=name, split=split, source=src, class_names=list(LETTERS)
    )


def probe_fonts(root: Root) -> tuple[list[str], bool]:
    """The font folders the glyphs are rendered from; available when any font file is there."""
    fonts = candidate_fonts(True)
    return sorted({str(p.parent) for p in fonts}), bool(fonts)


register(
    Source(
        name="glyphs",
        kind="image",
        shape=(1, 28, 28),
        native=("train", "test"),
        num_classes=10,
        description="STAND-IN for notMNIST: letters A-J rendered from offline fonts (matplotlib DejaVu/STIX/cm, "
        "system DejaVu), 28x28, deterministic; train 10,000 / test 2,000",
        license="fonts: DejaVu (Bitstream Vera licence), STIX (OFL), Computer Modern (Knuth licence)",
        how="always available (fonts ship with matplotlib)",
        loader=load_glyphs,
        probe=probe_fonts,
        options=frozenset({"count", "system_fonts"}),
        order=90,
    )
)
