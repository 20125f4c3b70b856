"""Training throughput: FineTuner vs a hand-written PyTorch loop, cached vs uncached 3D pipeline.

Not a test. Prints a table (the lead records it in docs/training.md). Targets:

- FineTuner / plain loop samples per second >= 0.95 (same model, batches, optimizer, precision);
- cached / uncached MONAI-tutorial-style 3D pipeline: epoch-2 time >= 3x faster.

A GPU variant (AMP, channels_last, torch.compile on/off) runs when CUDA is available.

Usage:
    python benchmarks/train_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import medtransfer as mt


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


def throughput_rows(device: torch.device, quick: bool) -> list[tuple[str, str, str]]:
    size = 64 if device.type == "cpu" else 224
    n = 64 if quick else 128
    epochs = 3 if quick else 4
    rounds = 3 if quick else 5
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
        # Alternate the two loops for several rounds: shared machines are noisy, and noise only
        # slows a run down, so the best epoch of each is the fairest comparison (median shown too).
        plain_rates, our_rates, plain_wall, our_wall = [], [], 0.0, 0.0
        for _ in range(rounds):
            t0 = time.perf_counter()
            plain_rates += plain_loop(
                copy.deepcopy(base), loader, epochs, device, amp_dtype, channels_last
            )
            plain_wall += time.perf_counter() - t0
            rates, wall = finetuner_rate(
                copy.deepcopy(base),
                loader,
                epochs,
                device=str(device),
                amp=amp_dtype is not None and ("bf16" if amp_dtype == torch.bfloat16 else "fp16"),
                channels_last=channels_last,
                compile=compile_,
            )
            our_rates += rates
            our_wall += wall
        for who, rates, wall in (("plain loop", plain_rates, plain_wall), ("FineTuner", our_rates, our_wall)):  # fmt: skip
            rows.append((
                f"resnet18 2D {size}px {name}: {who}",
                f"best {max(rates):.1f} / median {statistics.median(rates):.1f} samples/s",
                f"{wall:.1f} s wall over {rounds} runs",
            ))  # fmt: skip
        best = max(our_rates) / max(plain_rates)
        median = statistics.median(our_rates) / statistics.median(plain_rates)
        rows.append((f"  ratio FineTuner / plain ({name})", f"best {best:.3f} / median {median:.3f}", "target >= 0.95"))  # fmt: skip
    return rows


class _TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.num_classes = 2
        self.encoder = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.encoder(x).mean(dim=(2, 3)))


def overhead_rows(quick: bool) -> list[tuple[str, str, str]]:
    """Per-step cost of the FineTuner's bookkeeping, on a model so small that it dominates."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(1024 if quick else 4096, 1, 8, 8), torch.randint(0, 2, (1024 if quick else 4096,)))  # fmt: skip
    loader = DataLoader(data, batch_size=4)
    base = _TinyNet()
    plain, ours = [], []
    for _ in range(3):
        plain += plain_loop(copy.deepcopy(base), loader, 3, torch.device("cpu"))
        ours += finetuner_rate(copy.deepcopy(base), loader, 3, device="cpu")[0]
    plain_ms, our_ms = 4000 / max(plain), 4000 / max(ours)
    return [
        (
            "tiny CNN, batch 4 (CPU): plain loop / FineTuner",
            f"{plain_ms:.3f} / {our_ms:.3f} ms/step",
            "best epoch",
        ),  # fmt: skip
        ("  FineTuner overhead per optimizer step", f"{our_ms - plain_ms:+.3f} ms", ""),
    ]


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


def cache_rows(device: torch.device, quick: bool, workdir: str) -> list[tuple[str, str, str]]:
    from monai.networks.nets import UNet

    n = 8 if quick else 16
    shape = (96, 96, 48) if quick else (128, 128, 64)
    records = mt.data.synthetic.phantoms(n, "segmentation", shape=shape, output_dir=workdir)
    records = [{"image": r["image"], "label": r["label"], "case_id": r["case_id"]} for r in records]
    roi = (32, 32, 16)
    times = {}
    for cache in ("none", "memory"):
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
            "target >= 3x",
        ),  # fmt: skip
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer epochs")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = overhead_rows(args.quick)
    for device in devices:
        label = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"  # fmt: skip
        rows.append((f"== {label}", "", ""))
        rows += throughput_rows(device, args.quick)
        with tempfile.TemporaryDirectory() as workdir:
            rows += cache_rows(device, args.quick, workdir)
    width = max(len(r[0]) for r in rows)
    print(f"torch {torch.__version__}, medtransfer {mt.__version__}")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>20}  {note}")


if __name__ == "__main__":
    main()
