"""Drawing: heat-map overlays, the per-image summary sheet and the per-block report chart.

Every file is written under a temporary name in its destination folder and renamed into place,
so a crash never leaves a half-written PNG behind. Matplotlib is used through its object API
with the Agg canvas (no global backend, no display needed).
"""
import math
import os
import tempfile

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

OVERLAY_ALPHA = 0.5
SHEET_TILE_PIXELS = 192   # longest side of a tile on the summary sheet, keeps sheets small


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call write(temp_path) and rename the result to `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix='.tmp-', suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    try:
        write(temp)
        os.chmod(temp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give normal file modes
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return path


def write_png_rgb(path, rgb):
    """Write an RGB uint8 array as a PNG of exactly its size."""
    ok, encoded = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a PNG for {path!r}")
    return atomic_write(path, lambda temp: encoded.tofile(temp))


def attention_on_image(attention, valid_fraction, image_hw):
    """Crop a [H, W] map to the part that covers the image (not the batch padding) and
    upsample it bilinearly to `image_hw`."""
    height, width = attention.shape
    rows = min(height, max(1, int(round(height * valid_fraction[0]))))
    cols = min(width, max(1, int(round(width * valid_fraction[1]))))
    cropped = np.ascontiguousarray(attention[:rows, :cols], dtype=np.float32)
    return cv2.resize(cropped, (int(image_hw[1]), int(image_hw[0])),
                      interpolation=cv2.INTER_LINEAR)


def heat_overlay(image_rgb, heat, label=None):
    """Blend a colour-mapped heat map (scaled by its maximum: 0 = blue, max = red) onto the
    image; the result has the image's size."""
    peak = float(heat.max())
    scaled = heat / peak if peak > 0 else np.zeros_like(heat)
    colored = cv2.applyColorMap(np.uint8(np.clip(scaled, 0, 1) * 255), cv2.COLORMAP_JET)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    overlay = cv2.addWeighted(image_rgb, 1 - OVERLAY_ALPHA, colored, OVERLAY_ALPHA, 0)
    if label:
        scale = max(0.35, min(image_rgb.shape[:2]) / 640)
        origin = (4, int(22 * scale) + 4)  # Hershey simplex glyphs are ~22 px tall at scale 1
        cv2.putText(overlay, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3,
                    cv2.LINE_AA)
        cv2.putText(overlay, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return overlay


def _thumbnail(rgb):
    height, width = rgb.shape[:2]
    scale = min(1.0, SHEET_TILE_PIXELS / max(height, width))
    if scale == 1.0:
        return rgb
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _save_figure(figure, path, dpi):
    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    return atomic_write(path, lambda temp: canvas.print_png(temp))


def summary_sheet(path, title, rows, image_rgb):
    """One sheet per image: a row per stage, a column per block.

    rows: [(stage_label, [(block_title, overlay_rgb or None)])]; None marks an 'avg' pooling
    block, drawn as the dimmed image with a note instead of a heat map.
    """
    num_rows = len(rows)
    num_cols = max(len(tiles) for _, tiles in rows)
    height, width = image_rgb.shape[:2]
    tile_w = 2.0
    tile_h = tile_w * height / width + 0.6   # room for a three-line title
    # at least 5 inches wide, so the two-line title fits above a narrow grid;
    figure = Figure(figsize=(max(5.0, tile_w * num_cols + 0.5), tile_h * num_rows + 0.8),
                    layout='constrained')   # keeps titles, row labels and suptitle apart
    axes = figure.subplots(num_rows, num_cols, squeeze=False)
    dimmed = _thumbnail((image_rgb * 0.35 + 255 * 0.65).astype(np.uint8))
    for r, (stage_label, tiles) in enumerate(rows):
        for c in range(num_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(tiles):
                ax.axis('off')
                continue
            block_title, overlay = tiles[c]
            if overlay is None:
                ax.imshow(dimmed)
                ax.text(0.5, 0.5, 'uniform by\nconstruction\n(avg pooling)',
                        transform=ax.transAxes, ha='center', va='center', fontsize=8)
            else:
                ax.imshow(_thumbnail(overlay))
            ax.set_title(block_title, fontsize=7)
            if c == 0:
                ax.set_ylabel(stage_label, fontsize=9)
    figure.suptitle(title, fontsize=9)
    return _save_figure(figure, path, dpi=80)


def report_chart(path, title, blocks):
    """Bar charts of the per-block numbers of `context_report.block_report` entries."""
    names = [entry['block'] for entry in blocks]
    panels = [('entropy_ratio', 'attention entropy / uniform', (0, 1.12)),
              ('top1pct_share', 'mass on top 1 % of positions', (0, 1.12))]
    if any('add_magnitude' in entry for entry in blocks):
        panels.append(('add_magnitude', "add: mean|t| / mean|x'|", (0, None)))
    if any('mul_magnitude' in entry for entry in blocks):
        panels.append(('mul_magnitude', 'mul: mean|sigmoid(t) - 0.5|', (0, 0.5)))
    figure = Figure(figsize=(max(4.0, 0.35 * len(names) + 1.5), 1.9 * len(panels) + 0.6))
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    positions = np.arange(len(names))
    uniform = [entry['pooling_type'] == 'avg' for entry in blocks]
    for ax, (key, label, limits) in zip(axes, panels):
        values = [entry.get(key) for entry in blocks]
        values = [math.nan if v is None else v for v in values]   # absent or undefined
        finite = [v if math.isfinite(v) else 0.0 for v in values]
        colors = ['#bbbbbb' if flat and key in ('entropy_ratio', 'top1pct_share')
                  else '#3b75af' for flat in uniform]
        bars = ax.bar(positions, finite, color=colors)
        ax.bar_label(bars, labels=[f'{v:.2f}' if math.isfinite(v) else '' for v in values],
                     fontsize=5, padding=1)
        ax.set_ylabel(label, fontsize=7)
        ax.set_ylim(*limits)
        ax.set_xticks(positions)
        ax.set_xticklabels(names, rotation=90, fontsize=7)
        ax.tick_params(axis='y', labelsize=7)
        ax.grid(axis='y', alpha=0.3)
    if any(uniform):
        axes[0].set_title('grey: avg pooling, uniform by construction', fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    return _save_figure(figure, path, dpi=90)
