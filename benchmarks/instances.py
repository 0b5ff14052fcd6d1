"""Instance segmentation benchmark (issue #20): PQ through the int8 .tflite, the mIoU cost of the
instance heads, grouping time per 640×480 frame, and id switches on a clip of moving touching objects.

Usage (the models are trained and converted by the commands printed in benchmarks/instances.md):

    python benchmarks/instances.py --data VAL_DIR --instance inst_int8.tflite \
        --semantic sem_int8.tflite [--instance-keras inst.keras --semantic-keras sem.keras] -o out.json

Everything runs through edgeseg's own code (evaluate_any, Segmenter, IoUTracker).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np


def cpu_and_load() -> dict[str, str]:
    model = next((ln.split(":", 1)[1].strip() for ln in
                  subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if ln.startswith("Model name")), platform.processor())
    return {"cpu": model, "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


def components_of_truth(data: Path) -> dict[str, float]:
    """PQ of connected components of the perfect class masks: what a semantic model can at best give."""
    from edgeseg.data.instance_pipeline import read_panoptic, thing_classes
    from edgeseg.data.readers import MaskEncoding
    from edgeseg.runtime.components import components
    from edgeseg.verify.evaluate import eval_pairs
    from edgeseg.verify.panoptic import PanopticAccumulator

    enc = MaskEncoding()
    n = len((data / "labels.txt").read_text().split())
    things = thing_classes([data], enc)
    acc = PanopticAccumulator(n, things)
    for _, mask in eval_pairs(data):
        truth = read_panoptic(mask, enc, n)
        classes = np.where(truth >= 1000, truth // 1000, truth).astype(np.uint8)
        acc.update(truth, components(classes, things))
    r = acc.result()
    return {"pq_things": r.pq_things, "sq_things": r.sq_things, "rq_things": r.rq_things}


def scores(model: Path, data: Path, instances: str | None = None) -> dict[str, object]:
    """mIoU and PQ through ``evaluate --task instance``. An instance model's mIoU is its class
    mask's, where each instance's pixels take the instance's majority class (``miou_argmax``:
    the class head's argmax alone); a semantic model's instances are connected components."""
    from edgeseg.verify.evaluate_instances import evaluate_any

    ev = evaluate_any(model, data, "instance", instances=instances)
    p = ev.panoptic
    out = {"miou": ev.metrics.mean_iou, "pq": p.pq, "pq_things": p.pq_things, "sq_things": p.sq_things,
           "rq_things": p.rq_things, "pq_stuff": p.pq_stuff, "instances": ev.instances,
           "per_class_iou": list(ev.metrics.per_class_iou)}
    if instances is None:  # an instance model: its class mask before the instances' votes, too
        out["miou_argmax"] = evaluate_any(model, data, "semantic").metrics.mean_iou
    return out


def grouping_time(model: Path, frames: int = 200) -> dict[str, float]:
    """Grouping + instance list + resize of the id map to 640×480, per frame, through the Segmenter."""
    import cv2

    from edgeseg.data.synth_instances import instance_video_frames
    from edgeseg.runtime import Segmenter

    seg = Segmenter(model, threads=1, track=True)
    clip = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), (640, 480))
            for f, _ in instance_video_frames(4, 40, 128, 128, seed=3)]
    group, post, n = [], [], []
    for i in range(frames):
        r = seg.segment(clip[i % len(clip)])
        group.append(r.timings.group_ms)
        post.append(r.timings.postprocess_ms)
        n.append(len(r.instances or ()))
    g = np.array(group[10:])
    return {"frames": len(g), "group_ms_min": float(g.min()), "group_ms_p10": float(np.percentile(g, 10)),
            "group_ms_p50": float(np.median(g)), "group_ms_p90": float(np.percentile(g, 90)),
            "postprocess_ms_p50": float(np.median(post[10:])), "instances_per_frame": float(np.mean(n)),
            "frame": "640x480 (H×W 480×640)"}


def id_switches(model: Path, frames: int = 120, seed: int = 1, instances: str | None = None) -> dict[str, float]:
    """Id switches (MOT convention): a ground-truth object matched (IoU > 0.5) to a track id other
    than the one it was last matched to. Also how many objects were matched, per frame."""
    import cv2

    from edgeseg.data.synth_instances import instance_video_frames
    from edgeseg.runtime import Segmenter
    from edgeseg.runtime.tracking import mask_ious

    seg = Segmenter(model, threads=1, track=True, instances=instances)
    last: dict[int, int] = {}
    switches = matched = total = 0
    for rgb, truth in instance_video_frames(4, frames, 128, 128, seed=seed):
        r = seg.segment(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        gt = np.where(truth >= 1000, truth, 0).astype(np.int64)
        keys = np.unique(gt[gt > 0])
        dense = np.searchsorted(keys, gt) + 1
        dense[gt == 0] = 0
        total += len(keys)
        if r.instance_ids is None or not r.instance_ids.any() or not len(keys):
            continue
        ga, pb, iou = mask_ious(dense, r.instance_ids)
        for j in np.flatnonzero(iou > 0.5):
            obj, track = int(keys[ga[j] - 1]), int(pb[j])
            matched += 1
            if obj in last and last[obj] != track:
                switches += 1
            last[obj] = track
    return {"frames": frames, "gt_objects_per_frame": total / frames, "matched": matched,
            "match_rate": matched / max(total, 1), "id_switches": switches}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--instance", type=Path, required=True, help="instance model, int8 .tflite")
    ap.add_argument("--semantic", type=Path, help="semantic-only model, int8 .tflite")
    ap.add_argument("--instance-keras", type=Path)
    ap.add_argument("--semantic-keras", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    a = ap.parse_args()
    t0 = time.time()
    out: dict[str, object] = {"machine": cpu_and_load()}
    out["components_of_perfect_masks"] = components_of_truth(a.data)
    out["instance_int8"] = scores(a.instance, a.data)
    if a.instance_keras:
        out["instance_keras"] = scores(a.instance_keras, a.data)
    if a.semantic:
        out["semantic_int8_components"] = scores(a.semantic, a.data, "components")
    if a.semantic_keras:
        out["semantic_keras_components"] = scores(a.semantic_keras, a.data, "components")
    out["grouping_640x480"] = grouping_time(a.instance)
    out["video_instance_int8"] = id_switches(a.instance)
    if a.semantic:
        out["video_semantic_int8_components"] = id_switches(a.semantic, instances="components")
    out["machine_after"] = cpu_and_load()
    out["seconds"] = time.time() - t0
    a.output.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
