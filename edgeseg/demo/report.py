"""The demo report: Markdown plus a self-contained HTML page, with pictures."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.atomic import write_text

TILE = 256  # pixels per side of each picture in overlays.png
GRID_TITLES = ("input", "ground truth", "float32 .tflite", "int8 .tflite")


def overlay_grid(tflites: dict[str, str], val_dir: Path, out: Path, n: int = 3) -> Path:
    """input | ground truth | float32 | int8 overlays for ``n`` validation images, one PNG.

    Each picture is TILE×TILE; the ground truth is the validation mask (nearest-neighbour
    resized, ignored pixels grey), drawn with the same colours as the predictions, so
    where a model is wrong shows as a colour that differs from the truth column's.
    """
    import cv2

    from edgeseg.data.dataset import list_pairs
    from edgeseg.data.readers import read_image, read_mask
    from edgeseg.runtime import Segmenter
    from edgeseg.runtime.overlay import Overlay

    segs = {m: Segmenter(tflites[m]) for m in ("float32", "int8")}
    labels = segs["float32"].labels
    ov = Overlay(labels, alpha=0.55)
    rows = []
    for img_path, mask_path in list_pairs(val_dir)[:n]:
        # The shared readers (EXIF, grey, RGBA, palette masks...), then BGR as the Segmenter
        # and OpenCV draw it.
        bgr = cv2.cvtColor(read_image(img_path), cv2.COLOR_RGB2BGR)
        frame = cv2.resize(bgr, (TILE, TILE), interpolation=cv2.INTER_LINEAR)
        truth = cv2.resize(read_mask(mask_path), (TILE, TILE), interpolation=cv2.INTER_NEAREST)
        truth_tile = ov.draw(frame, truth)
        truth_tile[truth >= len(labels)] = 128  # the ignore index: neither right nor wrong
        tiles = [frame, truth_tile] + [ov.draw(frame, segs[m].segment(frame).mask) for m in segs]
        rows.append(np.hstack(tiles))
    grid = np.vstack(rows)
    head = np.full((28, grid.shape[1], 3), 255, np.uint8)
    for i, title in enumerate(GRID_TITLES):
        cv2.putText(head, title, (i * TILE + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                    cv2.LINE_AA)
    from edgeseg.atomic import atomic_path

    with atomic_path(out) as tmp:
        cv2.imwrite(str(tmp), np.vstack([head, grid]))
    return out


def summary_rows(s: dict[str, Any]) -> list[list[str]]:
    """One row per model: size, latency, speed-up, mIoU and agreement with float."""
    bench, cmp = s["bench"], s["compare"]
    base = bench["float32"]["p50_ms"]
    float_miou = next(iter(cmp.values()))["float_miou"]
    rows = [["Keras (float32)", "—", "—", "—", f"{float_miou:.3f}", "reference"]]
    for mode, path in s["tflite"].items():
        b = bench[mode]
        c = cmp.get(mode)
        rows.append([
            f"TFLite {mode}", f"{Path(path).stat().st_size / 1e6:.2f} MB", f"{b['p50_ms']:.1f}",
            f"{base / b['p50_ms']:.2f}×",
            f"{c['quant_miou']:.3f}" if c else f"{float_miou:.3f}*",
            f"{100 * c['pixel_agreement']:.2f} %" if c else "—",
        ])
    return rows


#: The note on the ``*`` that ``summary_rows`` puts on the float32 .tflite's mIoU (not compared).
FLOAT_NOTE = "*float32 .tflite gives the Keras model's mIoU up to float rounding."
HEADER = ["model", "size", "p50 latency (ms)", "speed-up vs float32", "val mIoU", "agreement with float"]


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def write_report(out: Path, s: dict[str, Any], val_dir: Path) -> tuple[Path, Path]:
    """Write ``report.md`` and a self-contained ``report.html`` into ``out``."""
    from edgeseg.plots import plot_bars

    grid = overlay_grid(s["tflite"], val_dir, out / "overlays.png")
    bars = plot_bars([f"TFLite {m}" for m in s["bench"]], [b["p50_ms"] for b in s["bench"].values()],
                     out / "latency.png", "median invoke latency (lower is better)")
    curve = Path(s["train"]["plot"]) if s["train"].get("plot") else None
    pics = [(p, t) for p, t in ((grid, "Input, ground truth, float32 and int8 overlays (validation images)"),
                                (curve, "Training: loss and validation mIoU per epoch"),
                                (bars, "Invoke latency on this machine")) if p and p.exists()]
    rows = summary_rows(s)
    t, b = s["train"], next(iter(s["bench"].values()))
    facts = (f"Trained {t['epochs']} epochs in {t['minutes']:.1f} min (best val mIoU {t['best_miou']:.3f} "
             f"at epoch {t['best_epoch']}). Timings: {b['runtime']} {b['runtime_version']}, "
             f"{b['threads']} threads, {b['delegate']}. The int8 model ran the demo clip at "
             f"{s['run']['fps']:.1f} FPS end to end ({s['run']['frames']} frames, saved to "
             f"{Path(s['run']['video']).name}).")
    from edgeseg.demo.confidence import explain

    clip = explain(s["run"].get("confidence"))
    if clip:
        facts += " " + clip
    md = ["# edgeseg demo report", "", facts, "", _md_table(rows), "",
          FLOAT_NOTE, ""]
    md += [f"## {title}\n\n![{title}]({p.name})\n" for p, title in pics]
    md_path = write_text(out / "report.md", "\n".join(md))

    def img(p: Path) -> str:
        return "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()

    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>edgeseg demo</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child{text-align:left}img{max-width:100%}</style></head><body>"
        f"<h1>edgeseg demo report</h1><p>{html.escape(facts)}</p><table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in HEADER) + f"</tr>{cells}</table>"
        + "".join(f"<h2>{html.escape(t_)}</h2><img src='{img(p)}' alt='{html.escape(t_)}'>" for p, t_ in pics)
        + "</body></html>"
    )
    return md_path, write_text(out / "report.html", page)
