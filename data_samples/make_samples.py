"""Make the committed sample data in data_samples/ from the synthetic CT phantoms (deterministic).

Run ``python data_samples/make_samples.py`` (or ``make samples``): it rewrites the files below with
identical bytes every time. Everything is synthetic (``mt.data.synthetic.phantoms``), no PHI.

    imagesTr/phantom-00{0,1,2}.nii.gz   CT images (float32 HU), 64 x 64 x 32, 5 mm voxels
    labelsTr/phantom-00{0,1,2}.nii.gz   label maps: 0 background, 1 liver, 2 lesion, 3 spleen, 4 kidney
    imagesTs/phantom-003.nii.gz         a test image without label (MSD style)
    dicom/phantom-000/slice_00NN.dcm    phantom-000 again, as a 32-slice CT DICOM series
    manifest.csv                        the three training pairs plus the DICOM series (same patient)
    dataset.json                        MSD-style: labels, modality, training and test lists
    xray/png/xray-0NN.png               24 chest-radiograph-like films, 128 x 128 (8- and 16-bit)
    xray/dicom/xray-0NN.dcm             4 more as DICOM DX (window, MONOCHROME1, VOI LUT), 12-bit
    xray/manifest.csv                   case_id,image,patient_id,opacity,effusion,cardiomegaly

The X-ray findings are 1 (present), 0 (absent) or -1 (uncertain, drawn faint), each visible: a
bright blob in a lung (opacity), fluid filling the bottom of a lung (effusion), a wide heart
shadow (cardiomegaly). Films are "bright = dense", as a reader sees them.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

import medtransfer as mt

HERE = Path(__file__).resolve().parent
SEED = 2  # cases 0 and 3 have liver lesions, cases 1 and 2 do not
GENERATED = (
    "imagesTr",
    "labelsTr",
    "imagesTs",
    "dicom",
    "manifest.csv",
    "dataset.json",
    "xray",
)
XRAY_SEED = 15
XRAY_SIZE = 128
XRAY_PNG, XRAY_DICOM, XRAY_PATIENTS = 24, 4, 20
XRAY_FINDINGS = ("opacity", "effusion", "cardiomegaly")


def main() -> None:
    for name in GENERATED:  # start clean so no stale file survives a change of this script
        target = HERE / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    cases = mt.data.synthetic.phantoms(4, task="segmentation", seed=SEED, shape=(64, 64, 32))
    training, test = cases[:3], cases[3]
    rows = []
    for case in training:
        case_id = case["case_id"]
        mt.io.save(case["image"], HERE / "imagesTr" / f"{case_id}.nii.gz")
        mt.io.save(case["label"], HERE / "labelsTr" / f"{case_id}.nii.gz")
        rows.append(
            {
                "image": f"imagesTr/{case_id}.nii.gz",
                "label": f"labelsTr/{case_id}.nii.gz",
                "case_id": case_id,
                "patient_id": case["patient_id"],
                "has_lesion": int(case["has_lesion"]),
            }
        )
    mt.io.save(test["image"], HERE / "imagesTs" / f"{test['case_id']}.nii.gz")

    first = training[0]
    mt.io.write_dicom_series(
        first["image"],
        HERE / "dicom" / first["case_id"],
        modality="CT",
        series_description="medtransfer synthetic phantom",
        patient_id=first["patient_id"],
        patient_name=first["patient_id"],
        case_id=first["case_id"],
        uid_seed=f"medtransfer-data-samples/{first['case_id']}",
    )
    rows.append(
        {
            "image": f"dicom/{first['case_id']}",
            "label": f"labelsTr/{first['case_id']}.nii.gz",
            "case_id": f"{first['case_id']}-dicom",
            "patient_id": first["patient_id"],  # same patient: splits keep both rows together
            "has_lesion": int(first["has_lesion"]),
        }
    )
    with (HERE / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    dataset = {
        "name": "medtransfer-phantoms",
        "description": "Synthetic abdominal CT phantoms (medtransfer.data.synthetic), no PHI",
        "reference": "data_samples/make_samples.py",
        "licence": "CC0-1.0",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {str(k): v for k, v in mt.data.synthetic.LABELS.items()},
        "numTraining": len(training),
        "numTest": 1,
        "training": [
            {
                "image": f"./imagesTr/{c['case_id']}.nii.gz",
                "label": f"./labelsTr/{c['case_id']}.nii.gz",
            }
            for c in training
        ],
        "test": [f"./imagesTs/{test['case_id']}.nii.gz"],
    }
    (HERE / "dataset.json").write_text(json.dumps(dataset, indent=4) + "\n", encoding="utf-8")
    write_xray_samples(HERE / "xray")


def write_xray_samples(folder: Path) -> None:
    """Chest-radiograph-like films with three findings, as PNG and DICOM DX, and their manifest."""
    rng = np.random.default_rng(XRAY_SEED)
    (folder / "png").mkdir(parents=True)
    (folder / "dicom").mkdir()
    rows = []
    for k in range(XRAY_PNG + XRAY_DICOM):
        case_id = f"xray-{k:03d}"
        findings = {
            name: int(rng.choice([1, 0, -1], p=[0.4, 0.45, 0.15])) for name in XRAY_FINDINGS
        }
        film = chest_film(rng, findings)
        if k < XRAY_PNG:  # even cases 8-bit, odd cases 16-bit
            image = f"png/{case_id}.png"
            bits = np.uint8 if k % 2 == 0 else np.uint16
            pixels = np.round(film * np.iinfo(bits).max).astype(bits)
            Image.fromarray(pixels).save(folder / image)
        else:
            image = f"dicom/{case_id}.dcm"
            write_xray_dicom(folder / image, film, case_id, variant=k - XRAY_PNG)
        # the first patients have two films: patient-level splits keep them together
        patient = f"patient-{k % XRAY_PATIENTS:02d}"
        rows.append({"case_id": case_id, "image": image, "patient_id": patient, **findings})
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def chest_film(rng: np.random.Generator, findings: dict[str, int]) -> np.ndarray:
    """A PA chest film in [0, 1] (rows, columns), bright = dense; -1 findings drawn faint."""
    from scipy.ndimage import gaussian_filter

    y, x = np.mgrid[0:XRAY_SIZE, 0:XRAY_SIZE] / (XRAY_SIZE - 1)
    cx, cy = 0.5 + rng.uniform(-0.03, 0.03), 0.5 + rng.uniform(-0.03, 0.03)
    size = rng.uniform(0.92, 1.05)

    def ellipse(x0: float, y0: float, rx: float, ry: float) -> np.ndarray:
        return ((x - x0) / (rx * size)) ** 2 + ((y - y0) / (ry * size)) ** 2 <= 1

    film = np.full(x.shape, 0.06)
    body = ellipse(cx, cy + 0.06, 0.46, 0.56)
    film[body] = 0.5
    lungs = [ellipse(cx + side * 0.2 * size, cy - 0.01, 0.15, 0.3) for side in (-1, 1)]
    either = lungs[0] | lungs[1]
    film[either] = 0.16
    film += 0.05 * np.sin(2 * np.pi * (y * 11 + 0.6 * np.abs(x - cx))) * either  # ribs
    film[body & (np.abs(x - cx) < 0.04 * size)] = 0.72  # spine and mediastinum
    heart_width = {1: 0.25, -1: 0.18, 0: 0.13}[findings["cardiomegaly"]]
    heart = ellipse(cx + 0.04 * size, cy + 0.19 * size, heart_width, 0.11)
    film[heart & body] = 0.7
    if findings["effusion"]:  # fluid in the lateral base of one lung, rising to the side wall
        side = int(rng.integers(2))
        lateral = np.abs(x - (cx + (1 if side else -1) * 0.2 * size)) / (0.15 * size)
        level = cy + (0.13 if findings["effusion"] == 1 else 0.21) * size - 0.04 * lateral**2
        film[lungs[side] & ~heart & (y > level)] = 0.6
    if findings["opacity"]:
        lung = int(rng.integers(2))
        bx = cx + (-1 if lung == 0 else 1) * 0.2 * size + rng.uniform(-0.04, 0.04)
        by = cy - 0.01 + rng.uniform(-0.15, 0.05)
        blob = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * (0.05 * size) ** 2))
        film += (0.45 if findings["opacity"] == 1 else 0.18) * blob * either
    film = gaussian_filter(film, 1.2) ** rng.uniform(0.85, 1.15)  # blur, exposure
    film += rng.normal(0.0, 0.015, film.shape)
    return np.clip(film, 0.0, 1.0)


def write_xray_dicom(path: Path, film: np.ndarray, case_id: str, variant: int) -> None:
    """One DX file (12-bit, ImagerPixelSpacing 2.8 mm): 0 window, 1 MONOCHROME1 with window and
    PresentationLUTShape INVERSE, 2 VOI LUT (gamma), 3 no VOI; each displays as ``film``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    def uid(kind: str) -> str:
        return generate_uid(entropy_srcs=["medtransfer-data-samples/xray", case_id, kind])

    stored = np.round(film * 4095).astype(np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX for presentation
    ds.file_meta.MediaStorageSOPInstanceUID = uid("instance")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
    ds.PatientName = ds.PatientID = case_id
    ds.StudyDate = ds.SeriesDate = "20000101"
    ds.StudyTime = ds.SeriesTime = "000000"
    ds.Modality, ds.PresentationIntentType = "DX", "FOR PRESENTATION"
    ds.SeriesDescription, ds.ViewPosition = "medtransfer synthetic chest film", "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImagerPixelSpacing = ["2.8", "2.8"]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", "0", "US"
    ds.PresentationLUTShape = "IDENTITY"
    if variant in (0, 1):
        ds.WindowCenter, ds.WindowWidth = "2048", "4096"
    if variant == 1:  # low values white: stored inverted
        ds.PhotometricInterpretation, ds.PresentationLUTShape = "MONOCHROME1", "INVERSE"
        stored = 4095 - stored
    if variant == 2:  # a non-linear rendering: stored = film ** 2, the LUT takes the root
        stored = np.round(film**2 * 4095).astype(np.uint16)
        item = Dataset()
        item.LUTDescriptor = [4096, 0, 12]
        item.LUTExplanation = "SQRT"
        item.add_new("LUTData", "US", [int(round(4095 * (v / 4095) ** 0.5)) for v in range(4096)])
        ds.VOILUTSequence = Sequence([item])
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


if __name__ == "__main__":
    main()
