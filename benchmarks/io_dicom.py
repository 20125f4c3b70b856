"""Benchmark: load a 200-slice 512x512 CT series with medtransfer and the anchors, in one run.

Compares medtransfer.io.load, SimpleITK's ImageSeriesReader (GDCM), MONAI's
LoadImage(reader="PydicomReader") and a naive pydicom loop on the same files. Each method runs in
a fresh subprocess (so peak memory is its own), after one warm-up read that puts the files in the
page cache. Correctness is judged in world space: each result is reoriented to RAS with its own
affine and compared with the ground-truth volume and affine.

Two series are written: "scanner order" (InstanceNumber follows position, as most scanners write)
and "renumbered" (InstanceNumber unrelated to position, as after some PACS exports/anonymisers).

Usage:
    .venv/bin/python benchmarks/io_dicom.py [--slices 200] [--size 512] [--repeats 3] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("medtransfer", "simpleitk", "monai_pydicom", "naive_pydicom")

# Each snippet loads FOLDER and sets `array` (any axis order) and `affine` (voxel -> RAS mm).
SNIPPETS = {
    "medtransfer": """
import medtransfer as mt
import medtransfer.io
def run():
    img = mt.io.load(FOLDER)
    return img.numpy(), img.affine.numpy()
""",
    "simpleitk": """
import SimpleITK as sitk
def run():
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(FOLDER))
    global image  # the array is a view: keep its image alive
    image = reader.Execute()
    array = sitk.GetArrayViewFromImage(image).transpose(2, 1, 0)
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return array, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
""",
    "monai_pydicom": """
from monai.transforms import LoadImage
loader = LoadImage(reader="PydicomReader", image_only=True)
def run():
    img = loader(FOLDER)
    return np.asarray(img), np.asarray(img.affine)
""",
    "naive_pydicom": """
import pydicom, glob
def run():
    slices = [pydicom.dcmread(f) for f in sorted(glob.glob(os.path.join(FOLDER, "*")))]
    iop = np.asarray(slices[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    slices.sort(key=lambda d: float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)))
    volume = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices])
    volume = volume.astype(np.float32).transpose(2, 1, 0)
    p0, p1 = (np.asarray(d.ImagePositionPatient, float) for d in (slices[0], slices[-1]))
    rs, cs = (float(v) for v in slices[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = iop[:3] * cs, iop[3:] * rs
    lps[:3, 2], lps[:3, 3] = (p1 - p0) / (len(slices) - 1), p0
    return volume, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
""",
}

RUNNER = """
import os, sys, time, json, threading, warnings
import numpy as np
warnings.simplefilter("ignore")
FOLDER = sys.argv[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE
{snippet}
times, peaks = [], []
for repeat in range(int(sys.argv[2])):
    base, peak, done = rss(), [0], threading.Event()
    def sample():  # peak resident memory while run() works, sampled every millisecond
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)
    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    array, affine = run()
    array = np.asarray(array)
    times.append(time.perf_counter() - start)
    done.set()
    sampler.join()
    peaks.append(max(peak[0], rss()) - base)
    if repeat == 0:
        np.save(sys.argv[3], np.ascontiguousarray(array, dtype=np.float32))
        np.save(sys.argv[3] + ".affine.npy", np.asarray(affine, dtype=np.float64))
    del array, affine
print(json.dumps({{"times": times, "peak_extra_bytes": max(peaks)}}))
"""


def make_series(
    folder: Path, slices: int, size: int, renumber: bool
) -> tuple[np.ndarray, np.ndarray]:
    import medtransfer as mt

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    body = (
        (xx - size / 2) ** 2 / (0.42 * size) ** 2 + (yy - size / 2) ** 2 / (0.33 * size) ** 2
    ) < 1
    volume = np.where(body, 40.0, -1000.0)[..., None].repeat(slices, axis=2).transpose(1, 0, 2)
    volume = volume + rng.integers(-20, 20, size=volume.shape) + np.arange(slices) * 0.0
    volume[size // 3 : size // 2, size // 3 : size // 2, :] += np.arange(slices)  # slice-dependent
    volume = volume.astype(np.float32)
    affine = np.array(
        [[-0.7, 0, 0, 180.0], [0, -0.7, 0, 200.0], [0, 0, 1.25, -300.0], [0, 0, 0, 1]],
        dtype=np.float64,
    )
    # scanners write head-first: instance 1 is the top slice, positions decrease with the number
    numbers = np.arange(slices, 0, -1) if not renumber else rng.permutation(slices) + 1
    names = [f"IM{n:05d}.dcm" for n in rng.permutation(slices)]
    mt.io.write_dicom_series(
        volume, folder, affine=affine, instance_numbers=numbers, file_names=names, uid_seed="bench"
    )
    return volume, affine


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    return nib.orientations.apply_orientation(array, ornt), affine @ nib.orientations.inv_ornt_aff(
        ornt, array.shape
    )


def run_method(method: str, folder: Path, repeats: int, out: Path) -> dict:
    code = RUNNER.format(snippet=SNIPPETS[method])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(repeats), str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def correct(out: Path, truth: np.ndarray, truth_affine: np.ndarray) -> bool:
    array, affine = np.load(out), np.load(str(out) + ".affine.npy")
    if array.shape != truth.shape:
        return False
    a, a_aff = to_ras(array, affine)
    t, t_aff = to_ras(truth, truth_affine)
    return bool(np.allclose(a_aff, t_aff, atol=1e-3) and np.array_equal(a, t))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for scenario, renumber in (("scanner order", False), ("renumbered", True)):
            folder = tmp / scenario.replace(" ", "_")
            truth, truth_affine = make_series(folder, args.slices, args.size, renumber)
            for f in folder.iterdir():  # warm the page cache so every method reads from memory
                f.read_bytes()
            for method in METHODS:
                repeats = args.repeats if scenario == "scanner order" else 1
                out = tmp / f"{method}.npy"
                res = run_method(method, folder, repeats, out)
                res["correct"] = "error" not in res and correct(out, truth, truth_affine)
                results[(scenario, method)] = res

    volume_mib = args.slices * args.size * args.size * 4 / 2**20
    sitk_time = min(results[("scanner order", "simpleitk")].get("times", [float("nan")]))
    header = (
        f"{args.slices} slices of {args.size}x{args.size} int16 CT, float32 volume {volume_mib:.0f} MiB; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(header)
    rows = []
    for method in METHODS:
        res = results[("scanner order", method)]
        if "error" in res:
            rows.append((method, "error", "", "", "", "", res["error"]))
            continue
        best = min(res["times"])
        rows.append(
            (
                method,
                f"{best:.3f}",
                f"{args.slices / best:.0f}",
                f"{sitk_time / best:.2f}x",
                f"{res['peak_extra_bytes'] / 2**20 / volume_mib:.2f}x",
                "yes" if res["correct"] else "NO",
                "yes" if results[("renumbered", method)]["correct"] else "NO",
            )
        )
    titles = (
        "method",
        "best s",
        "slices/s",
        "speed vs SimpleITK",
        "peak mem / volume",
        "correct",
        "correct (renumbered)",
    )
    if args.markdown:
        print("| " + " | ".join(titles) + " |")
        print("|" + "---|" * len(titles))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(str(r[i])) for r in (titles, *rows)) for i in range(len(titles))]
        for row in (titles, *rows):
            print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))


if __name__ == "__main__":
    main()
