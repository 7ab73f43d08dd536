"""Small image helpers for evaluation panels and augmentation previews (pure numpy/cv2)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OCCLUSION_RGB = (255, 40, 40)


def overlay(rgb: np.ndarray, mask: np.ndarray, color=OCCLUSION_RGB, alpha: float = 0.5) -> np.ndarray:
    """Tint the pixels where ``mask`` is 1 (values other than 0/1, e.g. 255 padding, are grey)."""
    out = rgb.astype(np.float32)
    on = mask == 1
    out[on] = (1 - alpha) * out[on] + alpha * np.asarray(color, np.float32)
    out[(mask != 0) & ~on] *= 0.4
    return np.clip(out, 0, 255).astype(np.uint8)


def heatmap(prob: np.ndarray) -> np.ndarray:
    """A [0, 1] probability map as an RGB heat map."""
    u8 = np.clip(prob * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def label_colors(labels: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray:
    """A partition (0 = uncovered, black) in random stable colours with segment borders drawn."""
    rng = np.random.default_rng(0)
    n = int(labels.max()) + 1 if labels.size else 1
    palette = rng.integers(40, 256, (n, 3)).astype(np.uint8)
    palette[0] = 0
    out = palette[labels]
    if rgb is not None:
        out = (0.6 * out + 0.4 * rgb).astype(np.uint8)
    # Borders where the label changes
    edge = np.zeros(labels.shape, bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:] |= labels[1:] != labels[:-1]
    out[edge] = 255
    return out


def titled(image: np.ndarray, title: str) -> np.ndarray:
    """The image with a title strip on top."""
    strip = np.full((18, image.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, title, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([strip, image])


def row(images: list[np.ndarray], titles: list[str] | None = None, height: int | None = None) -> np.ndarray:
    """Images side by side (resized to a common height), each optionally titled."""
    height = height or images[0].shape[0]
    tiles = []
    for i, img in enumerate(images):
        rgb = img if img.ndim == 3 else np.repeat((img * 255 if img.max() <= 1 else img)[..., None], 3, 2)
        w = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
        tile = cv2.resize(rgb.astype(np.uint8), (w, height), interpolation=cv2.INTER_NEAREST)
        tiles.append(titled(tile, titles[i]) if titles else tile)
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    return np.hstack([t for tile in tiles for t in (tile, gap)][:-1])


def grid(images: list[np.ndarray], cols: int) -> np.ndarray:
    """Equal-size RGB tiles in a grid of ``cols`` columns (missing cells white)."""
    h, w = images[0].shape[:2]
    rows_n = -(-len(images) // cols)
    out = np.full((rows_n * (h + 4), cols * (w + 4), 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + 4) : r * (h + 4) + h, c * (w + 4) : c * (w + 4) + w] = img
    return out


def save_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB image (PNG/JPEG by extension), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
