"""The offline demo behind ``make demo``: what medtransfer does today, on embedded sample data.

Runs in seconds on 2 CPU cores with no network. It loads the committed DICOM series and NIfTI
pairs in ``data_samples/`` (or regenerates them in a temporary folder when the package is used
outside the repository), checks that the DICOM and NIfTI copies of the same case agree voxel for
voxel in world space, splits the manifest by patient, and, when the offline EfficientNet-Lite0
weights are installed, runs the ImageNet encoder adapted to one-channel CT on a slice.

Usage:
    python -m medtransfer.demo [--out outputs/demo]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import medtransfer as mt

REPO_SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


def _samples_folder() -> Path:
    if (REPO_SAMPLES / "manifest.csv").exists():
        return REPO_SAMPLES
    folder = Path(tempfile.mkdtemp(prefix="medtransfer-samples-"))
    cases = mt.data.synthetic.phantoms(3, task="segmentation", seed=2, shape=(64, 64, 32))
    rows = ["image,label,case_id,patient_id"]
    for case in cases:
        cid = case["case_id"]
        mt.io.save(case["image"], folder / "imagesTr" / f"{cid}.nii.gz")
        mt.io.save(case["label"], folder / "labelsTr" / f"{cid}.nii.gz")
        rows.append(f"imagesTr/{cid}.nii.gz,labelsTr/{cid}.nii.gz,{cid},{case['patient_id']}")
    mt.io.write_dicom_series(cases[0]["image"], folder / "dicom" / cases[0]["case_id"])
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def _dicom_vs_nifti(samples: Path, out: Path) -> None:
    _section("DICOM series: discovered from headers, loaded by slice position")
    dicom_root = samples / "dicom"
    for info in mt.io.list_series(dicom_root):
        print(
            f"  {info.summary()}  spacing={tuple(round(s, 3) for s in info.spacing or ())} "
            f"orientation={info.orientation} problems={list(info.problems) or 'none'}"
        )
    case_folder = sorted(p for p in dicom_root.iterdir() if p.is_dir())[0]
    start = time.perf_counter()
    ct = mt.io.load(case_folder)
    elapsed = time.perf_counter() - start
    print(
        f"  loaded {case_folder.name}: shape={tuple(ct.shape)} spacing={ct.meta['spacing']} "
        f"HU range=({float(ct.min()):.0f}, {float(ct.max()):.0f}) in {elapsed * 1000:.0f} ms"
    )

    nifti = samples / "imagesTr" / f"{case_folder.name}.nii.gz"
    if nifti.exists():
        reference = mt.io.load(nifti)
        world_gap = np.abs(ct.affine.numpy() - reference.affine.numpy()).max()
        value_gap = float(np.abs(ct.numpy() - reference.numpy()).max())
        verdict = "agree" if world_gap < 1e-3 and value_gap <= 0.5 else "DISAGREE"
        print(
            f"  DICOM vs NIfTI copy of the same case: affine max diff {world_gap:.1e} mm, "
            f"voxel max diff {value_gap:.2f} HU -> {verdict}"
        )
    written = mt.io.save(ct, out / f"{case_folder.name}_from_dicom.nii.gz")
    print(f"  wrote {written}")


def _manifest_and_split(samples: Path) -> None:
    _section("Manifest and patient-level split")
    records = mt.data.load_manifest(samples / "manifest.csv")
    print(f"  {len(records)} records, {len({r['patient_id'] for r in records})} patients")
    for record in records:
        label = mt.io.load(record["label"], dtype=None) if record.get("label") else None
        labels = sorted(int(v) for v in np.unique(label.numpy())) if label is not None else []
        print(f"  {record['case_id']:<20} labels={labels}")
    parts = mt.data.kfold(records, k=2, by="patient_id", seed=0)
    for index, fold in enumerate(parts):
        print(
            f"  fold {index}: train={[r['case_id'] for r in fold.train]} val={[r['case_id'] for r in fold.val]}"
        )


def _encoder_on_a_slice(samples: Path) -> None:
    _section("ImageNet encoder adapted to 1-channel CT (offline weights)")
    try:
        import torch

        encoder = mt.encoders.create("tf_efficientnet_lite0", weights="imagenet", in_channels=1)
    except mt.errors.MedTransferError as err:
        print(f"  skipped: {err}")
        return
    image = mt.io.load(sorted((samples / "imagesTr").glob("*.nii.gz"))[0])
    ct_slice = image[..., image.shape[-1] // 2].as_tensor()
    windowed = ((ct_slice.clamp(-160, 240) + 160) / 400)[None, None].float()  # abdomen window
    with torch.no_grad():
        features = encoder(windowed)
    shapes = ", ".join(str(tuple(f.shape[1:])) for f in features)
    print(f"  tf_efficientnet_lite0 (ImageNet weights, stem summed to 1 channel): {shapes}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medtransfer.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    samples = _samples_folder()
    print(f"medtransfer {mt.__version__} demo on {samples}")
    try:
        _dicom_vs_nifti(samples, args.out)
        _manifest_and_split(samples)
        _encoder_on_a_slice(samples)
    except mt.errors.MedTransferError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"\nDone in {time.perf_counter() - start:.1f} s; outputs in {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
