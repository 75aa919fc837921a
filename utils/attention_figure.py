"""One PNG figure per image from :mod:`utils.attention_maps` results, drawn with Pillow only.

Layout: a grid of titled panels (each heat map blended over the image, maps normalised to their own
maximum, shown in the title) and a legend strip at the bottom: the colour bar (0 .. max of the
panel) and the query markers with their pixel coordinates.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

PANEL = 256           # longer side of a panel, pixels
TITLE = 30            # title band above each panel
_ANCHORS = np.array([[0, 0, 130], [0, 90, 255], [0, 230, 230], [250, 230, 0], [240, 0, 0]], float)
MARKER_COLOURS = [(255, 255, 255), (255, 0, 255), (0, 255, 0), (255, 128, 0), (0, 160, 255)]


def heat_colors(values):
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 on a blue-cyan-yellow-red scale."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0, 1) * (len(_ANCHORS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_ANCHORS) - 2)
    t = (v - lo)[..., None]
    return np.rint(_ANCHORS[lo] * (1 - t) + _ANCHORS[lo + 1] * t).astype(np.uint8)


def upsample(feature_map, size):
    """(h, w) tensor -> (H, W) float64 array, bilinear (align_corners=False)."""
    x = torch.as_tensor(feature_map).detach().float().cpu()[None, None]
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].double().numpy()


def heat_panel(image_rgb, values, alpha=0.6):
    """The map (already at image size) normalised to its max and blended over the image."""
    top = float(values.max()) if values.size else 0.0
    heat = heat_colors(values / top if top > 0 else values)
    return np.rint(alpha * heat + (1 - alpha) * image_rgb).astype(np.uint8), top


def _font():
    return ImageFont.load_default()


def _panel_size(h, w):
    f = PANEL / max(h, w)
    return max(1, round(w * f)), max(1, round(h * f)), f


def draw_figure(rows, points, title, path, legend_lines=()):
    """Save a grid figure. ``rows``: list of rows, each a list of (panel title, (H, W, 3) uint8,
    mark_points: bool); every panel of a row shares the image size."""
    h, w = rows[0][0][1].shape[:2]
    pw, ph, f = _panel_size(h, w)
    cols = max(len(r) for r in rows)
    legend_h = 48 + 14 * (len(points) + len(legend_lines))
    fig = Image.new("RGB", (cols * (pw + 8) + 8, 26 + len(rows) * (ph + TITLE + 8) + legend_h), "white")
    draw, font = ImageDraw.Draw(fig), _font()
    draw.text((8, 6), title, fill="black", font=font)
    for r, row in enumerate(rows):
        for c, (label, panel, mark) in enumerate(row):
            x0, y0 = 8 + c * (pw + 8), 26 + r * (ph + TITLE + 8)
            for i, line in enumerate(label.split("\n")[:2]):
                draw.text((x0, y0 + 2 + 12 * i), line, fill="black", font=font)
            fig.paste(Image.fromarray(panel).resize((pw, ph), Image.BILINEAR), (x0, y0 + TITLE))
            if mark:
                for k, (px, py) in enumerate(points if mark is True else [points[mark - 1]]):
                    colour = MARKER_COLOURS[(k if mark is True else mark - 1) % len(MARKER_COLOURS)]
                    cx, cy = x0 + (px + 0.5) * f, y0 + TITLE + (py + 0.5) * f
                    draw.ellipse((cx - 5, cy - 5, cx + 5, cy + 5), outline=colour, width=2)
                    draw.line((cx - 8, cy, cx + 8, cy), fill="black")
                    draw.line((cx, cy - 8, cx, cy + 8), fill="black")
    y = fig.height - legend_h + 6
    bar = heat_colors(np.tile(np.linspace(0, 1, 200), (12, 1)))
    draw.text((8, y), "heat scale:  0", fill="black", font=font)
    fig.paste(Image.fromarray(bar), (100, y))
    draw.text((306, y), "max of the panel (in its title)", fill="black", font=font)
    y += 22
    for k, (px, py) in enumerate(points):
        colour = MARKER_COLOURS[k % len(MARKER_COLOURS)]
        draw.ellipse((8, y + 1, 18, y + 11), outline=colour, fill=(40, 40, 40), width=2)
        draw.text((24, y), f"query {k + 1}: pixel x={px}, y={py}", fill="black", font=font)
        y += 14
    for line in legend_lines:
        draw.text((8, y), line, fill="black", font=font)
        y += 14
    fig.save(path)
    return path
