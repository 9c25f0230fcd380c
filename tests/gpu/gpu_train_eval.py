"""Training and evaluation steps of the GPU check (tests/gpu/device_check.sh).

    python tests/gpu/gpu_train_eval.py train --device cuda --iters 20 --step-json S.json
    python tests/gpu/gpu_train_eval.py evaluate --device cuda --reference-device cpu \\
        --out DIR --step-json S.json

``train``: ``--iters`` iterations of the ``oscar-edge`` preset from random weights on
train_full crops, the step of ``oscar_edge.train`` (AdamW, lr warm-up, autocast + GradScaler on
CUDA, gradient clipping), with a short warm-up so that 20 iterations move the weights. Passes
when every loss is finite, no step was skipped and the mean of the last five losses is below
the mean of the first five.

``evaluate``: ``oscar-edge evaluate`` (as users run it, in a subprocess) of the shipped
checkpoint on val_full on ``--device`` and on ``--reference-device`` (the two side by side),
peak refinement on and off; passes when each mNoCoAP is within ``--tolerance`` (0.002) of the
reference run. When a
reference run fails, the README figure (ONNX Runtime FP32: 0.9181 on, 0.7684 off) is the
reference instead, and the record says so.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import gpu_report  # noqa: E402

# README, "Backends and precision": the shipped model on val_full, ONNX Runtime FP32.
RECORDED_MNOCOAP = {"on": 0.9181, "off": 0.7684}
TOLERANCE = 0.002


# -- training ----------------------------------------------------------------------------------
def loss_trend(losses: Sequence[float], window: int = 5) -> Tuple[bool, str, Dict[str, Any]]:
    """(ok, message, figures): every loss finite and mean(last window) < mean(first window)."""
    losses = [float(v) for v in losses]
    if len(losses) < 2 * window:
        return False, f"{len(losses)} losses, need at least {2 * window}", {}
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    first = sum(losses[:window]) / window
    last = sum(losses[-window:]) / window
    figures = {f"mean_first_{window}": round(first, 5), f"mean_last_{window}": round(last, 5)}
    if bad:
        return False, f"non-finite loss at iterations {[i + 1 for i in bad]}", figures
    if not last < first:
        return False, (f"loss did not fall: mean of the last {window} {last:.4f} >= "
                       f"first {window} {first:.4f}"), figures
    return True, (f"loss fell from {first:.4f} (mean of the first {window}) to {last:.4f} "
                  f"(last {window})"), figures


def train_smoke(data_root: str, device: str = "cuda", iters: int = 20, batch_size: int = 8,
                crop: Tuple[int, int] = (320, 320), split: str = "train_full",
                preset: str = "oscar-edge", lr: float = 2e-3, warmup: int = 5,
                seed: int = 0) -> Dict[str, Any]:
    """``iters`` training iterations as in ``oscar_edge.train`` (AMP on CUDA). Returns the
    losses per iteration, the skipped steps, whether AMP ran, and the seconds taken."""
    import torch
    from torch.utils.data import DataLoader

    from oscar_edge.data.dataset import SirstTrainDataset, collate
    from oscar_edge.models import build_model
    from oscar_edge.models.losses import oscar_loss
    from oscar_edge.train import AMP_INIT_SCALE, lr_factor

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("torch has no CUDA device here (torch.cuda.is_available() is False)")
    use_amp = dev.type == "cuda"
    torch.manual_seed(seed)
    t0 = time.time()
    data = SirstTrainDataset(data_root, split, crop=crop, seed=seed)
    t_data = time.time() - t0
    model = build_model(preset).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    scaler = torch.amp.GradScaler("cuda", init_scale=AMP_INIT_SCALE, enabled=use_amp)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True,
                        collate_fn=collate, generator=torch.Generator().manual_seed(seed))
    losses: List[float] = []
    skipped = 0
    overflow: List[int] = []  # iterations whose FP16 gradients overflowed (GradScaler backs off)
    if len(loader) == 0:
        raise RuntimeError(f"{split} has {len(data)} images, fewer than one batch of {batch_size}")

    def batches():  # as many epochs as `iters` needs (a small split on a GPU machine)
        while True:
            yield from loader

    t1 = time.time()
    for step, (x, boxes, noco) in enumerate(batches()):
        if step >= iters:
            break
        for g in opt.param_groups:
            g["lr"] = lr * lr_factor(step, iters, warmup)
        x, noco = x.to(dev), noco.to(dev)
        with torch.autocast(dev.type, enabled=use_amp):
            outputs = model(x)
        loss, _ = oscar_loss(outputs, boxes, noco)
        losses.append(float(loss.detach()))
        opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            skipped += 1
            continue
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        if not torch.isfinite(gnorm):
            if use_amp:
                overflow.append(step + 1)
            else:
                skipped += 1
            scaler.update()
            continue
        scaler.step(opt)
        scaler.update()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return {"losses": [round(v, 5) for v in losses], "skipped": skipped,
            "overflow_iterations": overflow,
            "amp_scale": {"initial": AMP_INIT_SCALE, "final": scaler.get_scale()} if use_amp
            else None, "amp": use_amp,
            "device": str(dev), "iters": len(losses), "batch_size": batch_size,
            "crop": f"{crop[0]}x{crop[1]}", "preset": preset, "warmup_iters": warmup,
            "data_seconds": round(t_data, 2), "train_seconds": round(time.time() - t1, 2)}


# -- evaluation --------------------------------------------------------------------------------
class Evaluation:
    """One ``python -m oscar_edge evaluate`` of the shipped checkpoint, started in the
    background (:meth:`result` waits for it)."""

    def __init__(self, device: str, peak_refine: str, data_root: str, split: str,
                 json_path: Path, python: str = sys.executable) -> None:
        self.device, self.refine, self.json_path = device, peak_refine, Path(json_path)
        cmd = [python, "-m", "oscar_edge", "evaluate", "--device", device, "--peak-refine",
               peak_refine, "--data", str(data_root), "--split", split, "--json",
               str(json_path), "--no-progress"]
        self.t0 = time.time()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=REPO)

    def result(self, timeout: float) -> Dict[str, Any]:
        """The metrics JSON plus the seconds taken; RuntimeError (one line) when the run fails
        or is not done ``timeout`` seconds after it started."""
        left = max(timeout - (time.time() - self.t0), 0.1)
        try:
            out, err = self.proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"evaluate --device {self.device} --peak-refine {self.refine} "
                               f"timed out after {timeout:.0f} s") from None
        if self.proc.returncode != 0:
            text = (err or out or "").strip()
            tail = gpu_report.one_line(text.splitlines()[-1] if text else "no output", 240)
            raise RuntimeError(f"evaluate --device {self.device} --peak-refine {self.refine} "
                               f"exited {self.proc.returncode}: {tail}")
        metrics = json.loads(self.json_path.read_text())
        metrics["seconds"] = round(time.time() - self.t0, 1)
        return metrics

    def stop(self) -> None:
        """End the run (it is of no use any more) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def evaluate_cli(device: str, peak_refine: str, data_root: str, split: str, json_path: Path,
                 timeout: float, python: str = sys.executable) -> Dict[str, Any]:
    """Run ``python -m oscar_edge evaluate`` of the shipped checkpoint and wait for it: its
    metrics JSON plus the seconds taken. RuntimeError (one line) when it fails or times out."""
    return Evaluation(device, peak_refine, data_root, split, json_path, python).result(timeout)


def compare_maps(got: Dict[str, float], reference: Dict[str, float], tolerance: float,
                 sources: Dict[str, str]) -> Tuple[bool, List[str]]:
    """(ok, one line per refinement setting): |got - reference| <= tolerance for each key of
    ``got``; a key without a reference fails."""
    ok, lines = True, []
    for key in sorted(got):
        if key not in reference:
            ok = False
            lines.append(f"refine {key}: {got[key]:.4f}, no reference")
            continue
        diff = got[key] - reference[key]
        good = abs(diff) <= tolerance
        ok &= good
        lines.append(f"refine {key}: {got[key]:.4f} vs {reference[key]:.4f} "
                     f"({sources.get(key, '?')}), diff {diff:+.4f} "
                     f"{'<=' if good else '>'} {tolerance}")
    return ok, lines


_KEPT_METRICS = ("mNoCoAP", "AP50", "Pd", "Fa_per_image", "num_detections", "seconds")


def evaluate_step(args: argparse.Namespace) -> Tuple[bool, str, Dict[str, Any]]:
    """Per refinement setting, the run on ``--device`` and the reference run side by side (the
    reference works the CPU while the device run mostly waits on the GPU); a reference whose
    device run failed is stopped, there is nothing to compare it with."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures: Dict[str, Any] = {"split": args.split, "tolerance": args.tolerance,
                               "recorded_readme_ort_fp32": RECORDED_MNOCOAP}
    got: Dict[str, float] = {}
    reference: Dict[str, float] = {}
    sources: Dict[str, str] = {}
    notes: List[str] = []
    for refine in args.refine:
        runs = [Evaluation(args.device, refine, args.data, args.split,
                           out / f"eval_{args.device}_refine-{refine}.json")]
        if args.reference_device:
            runs.append(Evaluation(args.reference_device, refine, args.data, args.split,
                                   out / f"eval_{args.reference_device}_refine-{refine}.json"))
        try:
            m = runs[0].result(args.timeout)
        except (RuntimeError, OSError, ValueError) as exc:
            notes.append(f"refine {refine}: {exc}")
            for r in runs[1:]:
                r.stop()
            continue
        got[refine] = float(m["mNoCoAP"])
        figures[f"{args.device}_refine_{refine}"] = {k: m[k] for k in _KEPT_METRICS if k in m}
        if len(runs) > 1:
            try:
                ref = runs[1].result(args.timeout)
                reference[refine] = float(ref["mNoCoAP"])
                sources[refine] = f"{args.reference_device} run, same machine"
                figures[f"{args.reference_device}_refine_{refine}"] = {
                    k: ref[k] for k in _KEPT_METRICS if k in ref}
                continue
            except (RuntimeError, OSError, ValueError) as exc:
                notes.append(f"reference refine {refine}: {exc}")
        reference[refine] = RECORDED_MNOCOAP[refine]
        sources[refine] = "README recorded value, ONNX Runtime FP32"
    figures["reference_source"] = sources
    figures["diff_vs_readme"] = {k: round(v - RECORDED_MNOCOAP[k], 5) for k, v in got.items()}
    ok, lines = compare_maps(got, reference, args.tolerance, sources)
    ok = ok and len(got) == len(args.refine)
    return ok, f"mNoCoAP {args.device} vs reference: {'; '.join(lines + notes)}", figures


def train_step(args: argparse.Namespace) -> Tuple[bool, str, Dict[str, Any]]:
    crop = tuple(int(v) for v in args.crop.lower().split("x"))
    res = train_smoke(args.data, args.device, args.iters, args.batch_size, crop, args.split,
                      warmup=args.warmup)
    ok, msg, trend = loss_trend(res["losses"])
    res.update(trend)
    if res["skipped"]:
        ok, msg = False, f"{res['skipped']} steps skipped (non-finite loss or gradient); {msg}"
    late = [i for i in res["overflow_iterations"] if i > args.iters // 2]
    if late:  # GradScaler backs off on an overflow; past the first half it should have settled
        ok, msg = False, f"FP16 gradient overflow at iterations {late} (late); {msg}"
    elif res["overflow_iterations"]:
        msg = (f"{msg}; GradScaler backed off at iterations {res['overflow_iterations']} "
               f"(scale {res['amp_scale']['initial']:g} -> {res['amp_scale']['final']:g})")
    if res["iters"] < args.iters:
        ok, msg = False, f"only {res['iters']} of {args.iters} iterations ran; {msg}"
    return ok, f"{args.iters} iterations on {res['device']} (AMP {res['amp']}): {msg}", res


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="a few training iterations; the loss must fall")
    tr.add_argument("--device", default="cuda")
    tr.add_argument("--iters", type=int, default=20)
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--crop", default="320x320", help="HxW")
    tr.add_argument("--warmup", type=int, default=5)
    tr.add_argument("--split", default="train_full")
    ev = sub.add_parser("evaluate", help="oscar-edge evaluate on two devices, mNoCoAP compared")
    ev.add_argument("--device", default="cuda")
    ev.add_argument("--reference-device", default="cpu",
                    help="'' to compare with the README figure only")
    ev.add_argument("--refine", nargs="+", choices=("on", "off"), default=["on", "off"])
    ev.add_argument("--split", default="val_full")
    ev.add_argument("--tolerance", type=float, default=TOLERANCE)
    ev.add_argument("--timeout", type=float, default=150.0, help="seconds per evaluation")
    ev.add_argument("--out", type=Path, required=True, help="folder for the metrics JSON files")
    for p in (tr, ev):
        p.add_argument("--data", default=None, help="SIRST-V2 root")
        p.add_argument("--step-json", type=Path, default=os.environ.get("OSCAR_GPU_STEP_JSON"),
                       help="write the step record here (default: $OSCAR_GPU_STEP_JSON)")
    args = ap.parse_args(argv)
    if args.data is None:
        from oscar_edge.data import default_data_root

        args.data = default_data_root()
    t0 = time.time()
    try:
        ok, msg, figures = (train_step if args.cmd == "train" else evaluate_step)(args)
    except Exception as exc:  # reported in the step record, the check goes on
        ok, msg, figures = False, f"{type(exc).__name__}: {exc}", {}
    figures["seconds"] = round(time.time() - t0, 2)
    if args.step_json:
        gpu_report.write_step(args.step_json, args.cmd, ok, msg, figures)
    print(("ok: " if ok else "FAILED: ") + gpu_report.one_line(msg, 2000))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
