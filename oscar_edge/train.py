"""``oscar-edge train``: train a preset on SIRST-V2, validate with mNoCoAP, keep the best.

    python -m oscar_edge.train --preset oscar-edge --data ../shared/data/sirst-v2 \
        --train-split train_full --val-split val_full --out runs/edge

Writes into --out: ``last.pt`` (resumable, written atomically after every epoch),
``best.pt`` (best validation mNoCoAP, model weights only), ``final.pt`` (the weights at the
end, EMA weights with --ema: not selected on validation), ``log.jsonl`` (one line per epoch)
and ``args.json``. Resume an interrupted run with the same command plus --resume.
An existing run is never overwritten.

Recipe (spec section 5, adapted for CPU training): AdamW (lr 2e-3, weight decay 0.05),
linear warm-up then poly decay to 0, random crops around targets (see
``oscar_edge.data.dataset``), gradient-norm clipping, a NaN guard that skips the step and
says so. CPU by default; CUDA with mixed precision when ``--device cuda``/auto finds one.

Options of the deploy-first recipe (README, "Training"): ``--ema DECAY`` keeps an exponential
moving average of the weights and buffers (torch.optim.swa_utils.AveragedModel); validation
then evaluates the EMA weights and ``best.pt`` holds them. ``--scale-jitter 0.5,2`` takes each
crop at a random scale between 0.5x and 2x of the inference scale (log-uniform).

Fine-tuning on labelled video (README, "Fine-tuning on video"): ``--init CHECKPOINT`` starts
from trained weights; ``--video-data DIR`` adds every ``--video-every``-th labelled frame of
the ``--videos`` of a folder in the layout of ``../shared/data/ir-video`` to the training
images, each frame at the scale the runtime gives it. Validation stays on ``--val-split``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

from .data import default_data_root
from .errors import UserError, run_cli
from .presets import PRESETS, SHIPPED_PRESET
from .sizes import parse_size as _parse_size


# GradScaler's first scale under CUDA AMP. The summed OSCAR loss starts in the hundreds: with
# PyTorch's default of 2**16 the FP16 gradients overflowed for the first 10 steps on an H200
# (tests/gpu, "train"); 2**8 starts near where the scale settled.
AMP_INIT_SCALE = 2.0 ** 8

def lr_factor(iteration: int, total: int, warmup: int, warmup_ratio: float = 0.001,
              power: float = 1.0) -> float:
    """Learning-rate multiplier: linear warm-up from ``warmup_ratio``, then poly decay to 0."""
    if iteration < warmup:
        return warmup_ratio + (1 - warmup_ratio) * iteration / warmup
    return max(1.0 - iteration / max(total, 1), 0.0) ** power


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oscar-edge train", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default=SHIPPED_PRESET, choices=list(PRESETS))
    p.add_argument("--data", default=default_data_root(), help="SIRST-V2 root")
    p.add_argument("--train-split", default="train_full")
    p.add_argument("--val-split", default="val_full")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", default="320x320", help="training crop HxW, multiples of 32")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-iters", type=int, default=300)
    p.add_argument("--grad-clip", type=float, default=10.0)
    p.add_argument("--val-every", type=int, default=5, help="validate every N epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="exponential moving average of the weights with this decay per "
                        "iteration (e.g. 0.998); validation and best.pt use it (0: off)")
    p.add_argument("--ema-tau", type=float, default=500.0, metavar="N",
                   help="EMA warm-up: the decay of update n is DECAY x (1 - exp(-n / N)), so "
                        "early validations follow the model instead of the random initial "
                        "weights (default %(default)s iterations; 0: constant decay)")
    p.add_argument("--scale-jitter", default="1,1", metavar="LO,HI",
                   help="random crop scale range relative to the inference scale, log-uniform "
                        "(default 1,1: none; e.g. 0.5,2)")
    p.add_argument("--small-target-weight", type=float, default=1.0, metavar="K",
                   help="multiply the classification loss of positives of targets of at most "
                        "5 px (geometric mean side, network input) by K, fading to 1 at 10 px "
                        "(README, \"Training and the shipped model\"; default 1: the spec's loss)")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="fine-tune: start from these weights (same preset) instead of a random "
                        "start, e.g. oscar_edge/weights/oscar-edge.pt")
    p.add_argument("--video-data", default=None, metavar="DIR",
                   help="also train on labelled video in the layout of ../shared/data/ir-video "
                        "(videos/NAME.mp4, labels/NAME.json; README, fine-tuning on video), "
                        "frames resized as oscar-edge run resizes them")
    p.add_argument("--videos", default="all",
                   help="with --video-data: all, half:A, half:B (alternate videos of each "
                        "class) or comma-separated names (default %(default)s)")
    p.add_argument("--video-every", type=int, default=10, metavar="N",
                   help="with --video-data: every N-th labelled frame (default %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--max-iters-per-epoch", type=int, default=0, help=argparse.SUPPRESS)
    return p


def ema_decay(decay: float, tau: float, n: int) -> float:
    """The EMA decay of update ``n`` (1-based count of earlier updates): ``decay`` ramped up
    as decay x (1 - exp(-n / tau)); ``tau`` 0 = constant."""
    return decay if tau <= 0 else decay * (1.0 - math.exp(-n / tau))


def ema_update_fn(decay: float, tau: float):
    """``multi_avg_fn`` for ``torch.optim.swa_utils.AveragedModel``: EMA with the warm-up of
    ``ema_decay``; integer buffers (BatchNorm's batch counter) are averaged and rounded."""
    import torch

    @torch.no_grad()
    def update(ema_list, model_list, n_averaged) -> None:
        d = ema_decay(decay, tau, int(n_averaged))
        if torch.is_floating_point(ema_list[0]):
            torch._foreach_lerp_(ema_list, model_list, 1.0 - d)
        else:
            for e, m in zip(ema_list, model_list):
                e.copy_(torch.round(e * d + m * (1.0 - d)).to(e.dtype))

    return update


def parse_size(text: str, name: str = "--crop") -> tuple:
    """'320x256' (height x width, multiples of 32) -> (320, 256)."""
    try:
        return _parse_size(text, text_order="HxW", order="hw_out", multiple=32, name=name)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def parse_scale_range(text: str) -> tuple:
    """'0.5,2' -> (0.5, 2.0); UserError unless 0 < low <= high."""
    try:
        lo, hi = (float(v) for v in str(text).split(","))
    except ValueError:
        raise UserError(f"--scale-jitter must look like 0.5,2 (low,high), got {text!r}") \
            from None
    if not 0 < lo <= hi:
        raise UserError(f"--scale-jitter {text}: need 0 < low <= high")
    return lo, hi


def video_frames(root: str, videos: str, every: int):
    """The labelled video frames ``--video-data`` adds; UserError (one line) for bad input."""
    from .data.annotations import AnnotationError
    from .data.video import select_videos, training_frames

    if every < 1:
        raise UserError(f"--video-every must be >= 1, got {every}")
    try:
        names = select_videos(root, videos)
        if not names:
            raise UserError(f"--video-data {root}: no labelled videos selected by "
                            f"--videos {videos}")
        return training_frames(root, names, every)
    except (FileNotFoundError, ValueError, AnnotationError) as exc:
        raise UserError(f"--video-data: {exc}") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: train(args))


def train(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from . import checkpoint as ckpt
    from .backends.torch_backend import TorchBackend
    from .data.annotations import load_samples
    from .data.dataset import SirstTrainDataset, collate
    from .evaluate import evaluate_model
    from .models import build_model
    from .models.losses import oscar_loss
    from .pipeline import Detector

    crop = parse_size(args.crop)
    scale_range = parse_scale_range(args.scale_jitter)
    if not 0.0 <= args.ema < 1.0:
        raise UserError(f"--ema must be in [0, 1), got {args.ema}")
    if args.small_target_weight < 1.0:
        raise UserError(f"--small-target-weight must be >= 1, got {args.small_target_weight}")
    if args.ema_tau < 0:
        raise UserError(f"--ema-tau must be >= 0, got {args.ema_tau}")
    out = Path(args.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    if last_path.exists() and not args.resume:
        raise UserError(f"{out} already holds a run (last.pt); pass --resume to continue it "
                        f"or choose another --out")
    if args.resume and not last_path.exists():
        raise UserError(f"--resume: no {last_path} to resume from")
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    use_amp = device.type == "cuda"
    torch.manual_seed(args.seed)

    if args.init and not args.resume:
        model, _ = ckpt.load_model(args.init)
        if model.preset.name != args.preset:
            raise UserError(f"--init {args.init} holds preset {model.preset.name}, not "
                            f"--preset {args.preset}")
    else:
        model = build_model(args.preset)
    model = model.to(device)
    ema = None
    if args.ema:
        from torch.optim.swa_utils import AveragedModel

        ema = AveragedModel(model, multi_avg_fn=ema_update_fn(args.ema, args.ema_tau),
                            use_buffers=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scaler = torch.amp.GradScaler("cuda", init_scale=AMP_INIT_SCALE, enabled=use_amp)
    start_epoch, iteration, best, skipped = 0, 0, -1.0, 0
    if args.resume:
        state = ckpt.read(last_path)
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None:
            if "ema_state_dict" not in state:
                raise UserError(f"--ema: {last_path} was written without EMA; resume without "
                                "--ema or start a new run")
            ema.load_state_dict(state["ema_state_dict"])
        start_epoch, iteration = state["epoch"] + 1, state["iteration"]
        best, skipped = state["best"], state.get("skipped", 0)
        print(f"resuming {out} at epoch {start_epoch + 1} (iteration {iteration}, "
              f"best mNoCoAP {best:.4f})")
    else:
        (out / "args.json").write_text(json.dumps(vars(args), indent=2) + "\n")

    frames = (video_frames(args.video_data, args.videos, args.video_every)
              if args.video_data else [])
    train_set = SirstTrainDataset(args.data, args.train_split, crop=crop, seed=args.seed,
                                  progress=True, scale_range=scale_range)
    n_images = len(train_set)
    if frames:
        train_set.add_frames([(g, b) for _, g, b in frames])
        print(f"added {len(frames)} labelled video frames (every {args.video_every}-th of "
              f"{args.videos} under {args.video_data}) to {n_images} images")
    val_samples = load_samples(args.data, args.val_split)
    iters_per_epoch = len(train_set) // args.batch_size
    if args.max_iters_per_epoch:
        iters_per_epoch = min(iters_per_epoch, args.max_iters_per_epoch)
    total = iters_per_epoch * args.epochs
    print(f"training {args.preset} on {args.train_split} ({len(train_set)} images/frames, "
          f"{iters_per_epoch} iterations/epoch, {args.epochs} epochs) on {device}")

    for epoch in range(start_epoch, args.epochs):
        model.train()
        train_set.set_epoch(epoch)
        gen = torch.Generator().manual_seed(args.seed * 1000003 + epoch)
        loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                            drop_last=True, collate_fn=collate, generator=gen)
        sums: Dict[str, float] = {}
        n_ok = 0
        t0 = time.time()
        bar = tqdm(loader, total=iters_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}",
                   unit="it", leave=False)
        for step, (x, boxes, noco) in enumerate(bar):
            if step >= iters_per_epoch:
                break
            for g in opt.param_groups:
                g["lr"] = args.lr * lr_factor(iteration, total, args.warmup_iters)
            x, noco = x.to(device), noco.to(device)
            with torch.autocast(device.type, enabled=use_amp):
                outputs = model(x)
            loss, parts = oscar_loss(outputs, boxes, noco, args.small_target_weight)
            iteration += 1
            opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                skipped += 1
                tqdm.write(f"warning: non-finite loss at iteration {iteration} "
                           f"({', '.join(f'{k}={v:.3g}' for k, v in parts.items())}); "
                           f"step skipped ({skipped} so far)")
                continue
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            if not torch.isfinite(gnorm):
                skipped += 1
                what = ("FP16 gradient overflow, GradScaler lowers its scale" if use_amp
                        else "non-finite gradient")
                tqdm.write(f"warning: {what} at iteration {iteration}; "
                           f"step skipped ({skipped} so far)")
                scaler.update()
                continue
            scaler.step(opt)
            scaler.update()
            if ema is not None:
                ema.update_parameters(model)
            n_ok += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        bar.close()
        record = {"epoch": epoch + 1, "iteration": iteration, "seconds": time.time() - t0,
                  "lr": opt.param_groups[0]["lr"], "skipped": skipped,
                  **{k: v / max(n_ok, 1) for k, v in sums.items()}}
        if (epoch + 1) % args.val_every == 0 or epoch + 1 == args.epochs:
            judged = ema.module if ema is not None else model  # the weights that are saved
            judged.eval()
            m = evaluate_model(Detector(TorchBackend(judged, str(device))), val_samples,
                               progress=False)
            m.pop("curves")
            record.update(val_mNoCoAP=m["mNoCoAP"], val_AP50=m["AP50"], val_Pd=m["Pd"])
            if m["mNoCoAP"] > best:
                best = m["mNoCoAP"]
                meta = {"epoch": epoch + 1, "iteration": iteration, "val_split": args.val_split,
                        "val_metrics": {k: v for k, v in m.items() if isinstance(v, (int, float))},
                        "train_args": vars(args), "ema": bool(ema is not None)}
                ckpt.save(ckpt.model_checkpoint(judged, meta), best_path)
            model.train()
        last = {"preset": args.preset, "state_dict": model.state_dict(),
                "optimizer": opt.state_dict(), "epoch": epoch, "iteration": iteration,
                "best": best, "skipped": skipped}
        if ema is not None:
            last["ema_state_dict"] = ema.state_dict()
        ckpt.save(last, last_path)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        summary = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in record.items())
        print(summary, flush=True)
    final = ema.module if ema is not None else model
    ckpt.save(ckpt.model_checkpoint(final, {"epoch": args.epochs, "iteration": iteration,
                                            "train_args": vars(args),
                                            "ema": bool(ema is not None),
                                            "note": "final weights (EMA when --ema), not "
                                                    "selected on validation"}),
              out / "final.pt")
    print(f"done: best val mNoCoAP {best:.4f} -> {best_path}; final weights -> "
          f"{out / 'final.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
