"""Rasterise a world-space panel (messages, the SUDS 0-100 scale) into an RGBA image with Pillow.

Text changes are rare (a prompt, a message), so the panel is drawn on the CPU
once per change and uploaded into one reused texture; frames only sample it.
"""

from __future__ import annotations

import functools
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL_PX = (1024, 512)  # texture size; the panel is 1.0 m x 0.5 m in the world
_SCALE_X0_PX, _SCALE_X1_PX, _SCALE_Y_PX = 80, PANEL_PX[0] - 80, 360  # the SUDS scale's ends and centre line
# The same in the panel's texture coordinates (v up), for the shader that draws the patient's marker on it.
SCALE_UV = (1.0 - _SCALE_Y_PX / PANEL_PX[1], _SCALE_X0_PX / PANEL_PX[0], _SCALE_X1_PX / PANEL_PX[0])


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when installed (crisp, wide coverage), else Pillow's bundled scalable font."""
    for path in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def rasterise(text: str | None, suds_prompt: bool) -> np.ndarray:
    """The panel as an (H, W, 4) uint8 array, row 0 at the top; fully transparent when there is nothing to show."""
    w, h = PANEL_PX
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    if not text and not suds_prompt:
        return np.asarray(img)
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((4, 4, w - 5, h - 5), radius=36, fill=(18, 28, 40, 215), outline=(235, 240, 245, 255), width=4)
    body = text or "How much distress do you feel right now?"
    font = _font(46)
    lines = []
    for para in body.splitlines() or [""]:
        lines.extend(textwrap.wrap(para, width=36) or [""])
    lines = lines[:5 if not suds_prompt else 3]
    y = 40
    for line in lines:
        tw = draw.textlength(line, font=font)
        draw.text(((w - tw) / 2, y), line, font=font, fill=(245, 245, 245, 255))
        y += 58
    if suds_prompt:
        # The SUDS scale: 0 (calm) to 100 (worst), ticks every 10, coloured from green to red.
        x0, x1, yb = _SCALE_X0_PX, _SCALE_X1_PX, _SCALE_Y_PX
        for i in range(100):
            f = i / 99
            col = (int(60 + 190 * f), int(200 - 150 * f), 80, 255)
            xa = x0 + (x1 - x0) * i / 100
            draw.rectangle((xa, yb - 18, xa + (x1 - x0) / 100 + 1, yb + 18), fill=col)
        small = _font(32)
        for v in range(0, 101, 10):
            x = x0 + (x1 - x0) * v / 100
            draw.line((x, yb + 20, x, yb + 36), fill=(235, 235, 235, 255), width=3)
            label = str(v)
            draw.text((x - draw.textlength(label, font=small) / 2, yb + 40), label, font=small, fill=(235, 235, 235, 255))
        draw.text((x0, yb - 70), "calm", font=small, fill=(180, 230, 180, 255))
        worst = "worst"
        draw.text((x1 - draw.textlength(worst, font=small), yb - 70), worst, font=small, fill=(250, 170, 160, 255))
    return np.asarray(img)
