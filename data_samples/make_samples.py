"""Make the committed sample data in data_samples/ from the synthetic CT phantoms (deterministic).

Run ``python data_samples/make_samples.py`` (or ``make samples``): it rewrites the files below with
identical bytes every time. Everything is synthetic (``mt.data.synthetic.phantoms``), no PHI.

    imagesTr/phantom-00{0,1,2}.nii.gz   CT images (float32 HU), 64 x 64 x 32, 5 mm voxels
    labelsTr/phantom-00{0,1,2}.nii.gz   label maps: 0 background, 1 liver, 2 lesion, 3 spleen, 4 kidney
    imagesTs/phantom-003.nii.gz         a test image without label (MSD style)
    dicom/phantom-000/slice_00NN.dcm    phantom-000 again, as a 32-slice CT DICOM series
    manifest.csv                        the three training pairs plus the DICOM series (same patient)
    dataset.json                        MSD-style: labels, modality, training and test lists
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import medtransfer as mt

HERE = Path(__file__).resolve().parent
SEED = 2  # cases 0 and 3 have liver lesions, cases 1 and 2 do not
GENERATED = ("imagesTr", "labelsTr", "imagesTs", "dicom", "manifest.csv", "dataset.json")


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


if __name__ == "__main__":
    main()
