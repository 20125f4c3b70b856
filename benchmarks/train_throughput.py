"""Training throughput: FineTuner vs a hand-written PyTorch loop, cached vs uncached 3D pipeline.

Not a test. Prints a table (recorded in docs/benchmarks.md). Targets:

- FineTuner / plain loop samples per second >= 0.95 (same model, batches, optimizer, precision);
- cached / uncached MONAI-tutorial-style 3D pipeline: epoch-2 time >= 3x faster.

Shared machines are noisy, so the plain and FineTuner runs are interleaved (A B A B ...), each
figure is the median over many short runs with its spread (IQR and min-max), the 1-minute load
average seen during those runs is printed beside it, and a warning says when the spread is larger
than the difference (the IQRs overlap by more than the gap between the medians): then the ratio is
noise, not a measurement.

A GPU variant (AMP, channels_last, torch.compile on/off) runs when CUDA is available.

Usage:
    python benchmarks/train_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, TensorDataset

import medtransfer as mt

Row = tuple[str, str, str]


def load_average() -> float:
    """The machine's 1-minute load average (NaN where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


@dataclass(frozen=True)
class Spread:
    """One figure measured over several short runs, with the load average seen by each run."""

    values: list[float]
    loads: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def iqr(self) -> tuple[float, float]:
        if len(self.values) < 2:
            return self.values[0], self.values[0]
        q1, _, q3 = statistics.quantiles(self.values, n=4, method="inclusive")
        return q1, q3

    def describe(self, fmt: str = ".1f") -> str:
        (q1, q3), lo, hi = self.iqr, min(self.values), max(self.values)
        return (
            f"median {self.median:{fmt}} (IQR {q1:{fmt}}-{q3:{fmt}}, "
            f"min-max {lo:{fmt}}-{hi:{fmt}}, n={len(self.values)})"
        )

    def load_note(self) -> str:
        return f"load {min(self.loads):.2f}-{max(self.loads):.2f}"


def interleaved(
    run_a: Callable[[], float], run_b: Callable[[], float], pairs: int
) -> tuple[Spread, Spread]:
    """Run A, B, A, B, ... ``pairs`` times each: load changes hit both alike, not one of them."""
    a, b, loads_a, loads_b = [], [], [], []
    for _ in range(pairs):
        loads_a.append(load_average())
        a.append(run_a())
        loads_b.append(load_average())
        b.append(run_b())
    return Spread(a, loads_a), Spread(b, loads_b)


def noise_warning(a: Spread, b: Spread, fmt: str = ".3f") -> str | None:
    """A warning when the IQRs overlap by more than the medians differ (the ratio is noise)."""
    (a1, a3), (b1, b3) = a.iqr, b.iqr
    overlap = max(0.0, min(a3, b3) - max(a1, b1))
    gap = abs(b.median - a.median)
    if overlap <= gap:
        return None
    return (
        f"WARNING: the IQRs overlap by {overlap:{fmt}}, more than the medians differ "
        f"({gap:{fmt}}): this ratio is noise; rerun on a quiet machine (load now "
        f"{load_average():.2f} on {os.cpu_count()} cores)"
    )


def plain_loop(model, loader, epochs, device, amp_dtype=None, channels_last=False):
    """The baseline: what a user writes by hand (same optimizer, loss and batches)."""
    model = model.to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    rates = []
    model.train()
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for x, y in loader:
            x = x.to(device, non_blocking=True, memory_format=fmt)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # the FineTuner reads the loss every step (NaN check, progress)
            seen += x.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(seen / (time.perf_counter() - start))
    return rates[1:]  # the first epoch warms up allocators and caches


def finetuner_rate(model, loader, epochs, **options):
    with tempfile.TemporaryDirectory() as run_dir:
        tuner = mt.training.FineTuner(
            model, lr=1e-3, schedule="constant", warmup=0, run_dir=run_dir, progress="quiet",
            **options,
        )  # fmt: skip
        start = time.perf_counter()
        history = tuner.fit(loader, epochs=epochs)
        wall = time.perf_counter() - start
    return history["samples_per_s"][1:], wall


def throughput_rows(device: torch.device, quick: bool) -> list[Row]:
    size = 64 if device.type == "cpu" else 224
    n = 64 if quick else 128
    runs = 7 if quick else 15
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(n, 1, size, size), torch.randint(0, 2, (n,)))
    loader = DataLoader(data, batch_size=16, pin_memory=device.type == "cuda")
    base = mt.models.create_classifier("resnet18", 2, weights=None)
    rows = []
    variants = [("fp32", None, False, False)]
    if device.type == "cuda":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        variants += [("amp+channels_last", amp, True, False), ("amp+cl+compile", amp, True, True)]
    for name, amp_dtype, channels_last, compile_ in variants:
        # one short run = 2 epochs; the second (after allocator and cache warm-up) is the figure
        def plain(amp_dtype=amp_dtype, channels_last=channels_last) -> float:
            return plain_loop(copy.deepcopy(base), loader, 2, device, amp_dtype, channels_last)[0]

        def ours(amp_dtype=amp_dtype, channels_last=channels_last, compile_=compile_) -> float:
            amp = amp_dtype is not None and ("bf16" if amp_dtype == torch.bfloat16 else "fp16")
            rates, _ = finetuner_rate(
                copy.deepcopy(base), loader, 2, device=str(device), amp=amp,
                channels_last=channels_last, compile=compile_,
            )  # fmt: skip
            return rates[0]

        plain_rates, our_rates = interleaved(plain, ours, runs)
        for who, spread in (("plain loop", plain_rates), ("FineTuner", our_rates)):
            rows.append((f"resnet18 2D {size}px {name} {who}, samples/s", spread.describe(), spread.load_note()))  # fmt: skip
        ratio = our_rates.median / plain_rates.median
        rows.append((f"  ratio FineTuner / plain ({name}), medians", f"{ratio:.3f}", "target >= 0.95"))  # fmt: skip
        warning = noise_warning(plain_rates, our_rates, ".1f")
        if warning:
            rows.append(("  " + warning, "", ""))
    return rows


class _TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.num_classes = 2
        self.encoder = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.encoder(x).mean(dim=(2, 3)))


def overhead_rows(quick: bool) -> list[Row]:
    """Per-step cost of the FineTuner's bookkeeping, on a model so small that it dominates."""
    torch.manual_seed(0)
    n, batch = (256 if quick else 1024), 4
    data = TensorDataset(torch.randn(n, 1, 8, 8), torch.randint(0, 2, (n,)))
    loader = DataLoader(data, batch_size=batch)
    base = _TinyNet()
    cpu = torch.device("cpu")

    def plain() -> float:  # ms per optimizer step in the second epoch of a short run
        return 1000 * batch / plain_loop(copy.deepcopy(base), loader, 2, cpu)[0]

    def ours() -> float:
        return 1000 * batch / finetuner_rate(copy.deepcopy(base), loader, 2, device="cpu")[0][0]

    plain_ms, our_ms = interleaved(plain, ours, 25 if quick else 60)
    # the runs are paired (A then B at nearly the same load): the per-pair difference is the
    # overhead with the load drift taken out
    diffs = Spread([o - p for o, p in zip(our_ms.values, plain_ms.values)], our_ms.loads)
    rows = [
        (
            f"tiny CNN, batch {batch} (CPU) plain loop, ms/step",
            plain_ms.describe(".3f"),
            plain_ms.load_note(),
        ),  # fmt: skip
        (
            f"tiny CNN, batch {batch} (CPU) FineTuner, ms/step",
            our_ms.describe(".3f"),
            our_ms.load_note(),
        ),  # fmt: skip
        (
            "  FineTuner overhead per step, medians",
            f"{our_ms.median - plain_ms.median:+.3f} ms",
            "",
        ),  # fmt: skip
        ("  FineTuner overhead per step, paired runs", diffs.describe("+.3f"), "ms"),
    ]
    warning = noise_warning(plain_ms, our_ms)
    if warning:
        rows.append(("  " + warning, "", ""))
    return rows


def tutorial_transforms(roi: tuple[int, int, int]):
    """A MONAI spleen-tutorial-style pipeline: load, orient, resample, window, crop, augment."""
    from monai import transforms as T

    keys = ("image", "label")
    return T.Compose(
        [
            T.LoadImaged(keys),
            T.EnsureChannelFirstd(keys),
            T.Orientationd(keys, axcodes="RAS"),
            T.Spacingd(keys, pixdim=(2.0, 2.0, 3.0), mode=("bilinear", "nearest")),
            T.ScaleIntensityRanged("image", -160, 240, 0.0, 1.0, clip=True),
            T.CropForegroundd(keys, source_key="image"),
            T.RandCropByPosNegLabeld(keys, "label", roi, pos=1, neg=1, num_samples=2),
            T.RandFlipd(keys, prob=0.5, spatial_axis=0),
        ]
    )


def cache_rows(device: torch.device, quick: bool, workdir: str) -> list[Row]:
    from monai.networks.nets import UNet

    n = 8 if quick else 16
    shape = (96, 96, 48) if quick else (128, 128, 64)
    records = mt.data.synthetic.phantoms(n, "segmentation", shape=shape, output_dir=workdir)
    records = [{"image": r["image"], "label": r["label"], "case_id": r["case_id"]} for r in records]
    roi = (32, 32, 16)
    times, loads = {}, []
    for cache in ("none", "memory"):
        loads.append(load_average())
        torch.manual_seed(0)
        model = UNet(3, 1, 5, channels=(8, 16, 32), strides=(2, 2), num_res_units=0)
        model.num_classes = 5
        with tempfile.TemporaryDirectory() as run_dir:
            tuner = mt.training.FineTuner(
                model, task="segmentation", lr=1e-3, batch_size=2, cache=cache,
                run_dir=run_dir, progress="quiet", device=str(device), num_workers=0,
            )  # fmt: skip
            start = time.perf_counter()
            history = tuner.fit(records, epochs=2, train_transform=tutorial_transforms(roi))
            build = time.perf_counter() - start - sum(history["time_s"])
        times[cache] = (history.records[1]["time_s"], build)
    return [
        (f"3D {shape} x{n}, uncached (Dataset)", f"epoch-2 {times['none'][0]:.2f} s", ""),
        (
            f"3D {shape} x{n}, CacheDataset",
            f"epoch-2 {times['memory'][0]:.2f} s",
            f"cache fill {times['memory'][1]:.1f} s",
        ),  # fmt: skip
        (
            "  ratio uncached / cached (epoch 2)",
            f"{times['none'][0] / times['memory'][0]:.1f}x",
            f"target >= 3x; one run each, load {min(loads):.2f}-{max(loads):.2f}",
        ),  # fmt: skip
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer runs")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, medtransfer {mt.__version__}; {platform.machine()}, "
        f"{os.cpu_count()} cores ({platform.processor() or platform.platform()}); "
        f"load average at start {load_average():.2f}"
    )
    rows = overhead_rows(args.quick)
    for device in devices:
        label = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"  # fmt: skip
        rows.append((f"== {label}", "", ""))
        rows += throughput_rows(device, args.quick)
        with tempfile.TemporaryDirectory() as workdir:
            rows += cache_rows(device, args.quick, workdir)
    width = max(len(r[0]) for r in rows if r[1])
    for name, value, note in rows:
        print(f"{name:<{width}}  {value}  {note}".rstrip() if value else name)


if __name__ == "__main__":
    main()
