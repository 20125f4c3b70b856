"""SNOMED CT codes of DICOM-SEG segments: looked up from the class name, or given per class.

A DICOM-SEG describes each segment by a property *category* (CID 7150: Anatomical Structure,
Tissue, Morphologically Abnormal Structure...) and a property *type* (e.g. SCT 10200004 "Liver").
A class name is looked up case-insensitively, ``_`` and ``-`` read as spaces and British spellings
("grey", "tumour", "oedema") as American:

1. in :data:`SEGMENT_CODES` (common organs, tissues and lesions, short names and synonyms such
   as ``"csf"``, ``"wm"``), the whole name or its last words: "liver tumour" is a tumor, "left
   kidney" a kidney;
2. in pydicom's DICOM code dictionary, among the SNOMED CT segmentation property types of
   CIDs 7191-7198, by code meaning or keyword, laterality words (left, right) left out:
   "left putamen" is SCT 89278009 "Putamen"; the category is that of the CID listing the code.

A name none of these knows is coded as the generic "Tissue" (:func:`segment_codes`), and
``save_dicom_seg`` warns. Exact codes can be given per class: see :func:`parse_label`.

Example:
    >>> category, kind = lookup_codes("Grey_Matter")
    >>> category.meaning, kind.value, kind.meaning
    ('Anatomical Structure', '389081007', 'Gray Matter')
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from medtransfer.errors import ConfigError

__all__ = [
    "SEGMENT_CODES",
    "Segment",
    "category_of",
    "lookup_codes",
    "parse_label",
    "segment_codes",
]

_ANATOMY = "AnatomicalStructure"
_ABNORMAL = "MorphologicallyAbnormalStructure"
#: Segment name (lower case, "_" or "-" read as a space) -> (CID 7150 category, SCT keyword of
#: pydicom's dictionary). Names not listed are looked up in the dictionary itself.
SEGMENT_CODES: dict[str, tuple[str, str]] = {
    **{
        name: (_ANATOMY, keyword)
        for name, keyword in {
            "liver": "Liver", "spleen": "Spleen", "kidney": "Kidney", "pancreas": "Pancreas",
            "lung": "Lung", "heart": "Heart", "brain": "Brain", "prostate": "Prostate",
            "bladder": "Bladder", "stomach": "Stomach", "gallbladder": "Gallbladder",
            "aorta": "Aorta", "bone": "Bone", "esophagus": "Esophagus", "oesophagus": "Esophagus",
            "duodenum": "Duodenum", "colon": "Colon", "rectum": "Rectum", "vertebra": "Vertebra",
            "spine": "Spine", "spinal cord": "SpinalCord", "muscle": "Muscle", "rib": "Rib",
            "trachea": "Trachea", "thyroid": "Thyroid", "adrenal gland": "AdrenalGland",
            "portal vein": "PortalVein", "inferior vena cava": "InferiorVenaCava",
            "uterus": "Uterus", "femur": "Femur", "breast": "Breast", "lymph node": "LymphNode",
            "hippocampus": "Hippocampus", "cerebellum": "Cerebellum",
            "white matter": "WhiteMatter", "wm": "WhiteMatter", "gray matter": "GrayMatter",
            "gm": "GrayMatter", "cerebrospinal fluid": "CerebrospinalFluid",
            "csf": "CerebrospinalFluid", "body": "EntireBody",
        }.items()
    },
    **{
        name: (_ABNORMAL, keyword)
        for name, keyword in {
            "lesion": "Lesion", "tumor": "Tumor", "tumour": "Tumor", "neoplasm": "Neoplasm",
            "mass": "Mass", "nodule": "Nodule", "cyst": "Cyst", "edema": "Edema",
            "oedema": "Edema", "necrosis": "Necrosis", "hemorrhage": "Hemorrhage",
            "haemorrhage": "Hemorrhage",
        }.items()
    },
}  # fmt: skip

# British -> American spelling, word by word (SNOMED CT's meanings are American).
_SPELLING = {
    "grey": "gray", "tumour": "tumor", "tumours": "tumors", "oedema": "edema",
    "haemorrhage": "hemorrhage", "oesophagus": "esophagus", "haematoma": "hematoma",
    "oesophageal": "esophageal", "haemangioma": "hemangioma", "foetus": "fetus",
}  # fmt: skip
_SIDES = ("left", "right", "bilateral", "l", "r")
# The CIDs of segmentation property types, one per CID 7150 category, in order of preference
# when a code is listed by several (anatomy first).
_TYPE_CIDS = (
    (7192, _ANATOMY), (7194, _ABNORMAL), (7191, "Tissue"), (7197, "BodySubstance"),
    (7193, "PhysicalObject"), (7196, "SpatialAndRelationalConcept"), (7195, "Function"),
    (7198, "Substance"),
)  # fmt: skip


class Segment(NamedTuple):
    """One segment to write: its label value, name, codes, and whether the codes are known."""

    value: int
    name: str
    category: Any
    type: Any
    known: bool


def _normalise(text: str) -> str:
    words = text.lower().replace("_", " ").replace("-", " ").replace(",", " ").split()
    return " ".join(_SPELLING.get(word, word) for word in words)


@functools.cache
def _dictionary() -> tuple[dict[str, tuple[str, Any]], dict[tuple[str, str], str]]:
    """``{meaning or keyword, lower case: (category keyword, code)}`` and ``{(value, scheme):
    category keyword}`` of the SNOMED CT segmentation property types in pydicom's dictionary."""
    from pydicom.sr.codedict import codes

    by_text: dict[str, tuple[str, Any]] = {}
    by_value: dict[tuple[str, str], str] = {}
    for cid, category in _TYPE_CIDS:
        for keyword, code in getattr(codes, f"cid{cid}").concepts.items():
            if code.scheme_designator != "SCT":
                continue
            by_text.setdefault(_normalise(code.meaning), (category, code))
            by_text.setdefault(keyword.lower(), (category, code))
            by_value.setdefault((code.value, code.scheme_designator), category)
    return by_text, by_value


def lookup_codes(name: str) -> tuple[Any, Any] | None:
    """``(category, type)`` pydicom codes for a class name, or None when none is known.

    Example:
        >>> [code.meaning for code in lookup_codes("left white-matter")]
        ['Anatomical Structure', 'White Matter']
        >>> lookup_codes("my organ") is None
        True
    """
    from pydicom.sr.codedict import codes

    words = _normalise(name).split()
    for start in range(len(words)):  # the whole name, then its last words ("liver tumour")
        key = " ".join(words[start:])
        if key in SEGMENT_CODES:
            category, keyword = SEGMENT_CODES[key]
            return getattr(codes.cid7150, category), getattr(codes.SCT, keyword)
    while words and words[0] in _SIDES:  # "left putamen": laterality is not part of the type
        words = words[1:]
    key = " ".join(words)
    by_text, _ = _dictionary()
    found = by_text.get(key) or by_text.get(key.replace(" ", ""))
    return None if found is None else (getattr(codes.cid7150, found[0]), found[1])


def segment_codes(name: str) -> tuple[Any, Any]:
    """``(category, type)`` codes for a segment name: :func:`lookup_codes`, else Tissue.

    Example:
        >>> category, kind = segment_codes("Liver_Tumour")
        >>> category.meaning, kind.meaning
        ('Morphologically Abnormal Structure', 'Tumor')
        >>> segment_codes("my organ")[1].meaning
        'Tissue'
    """
    from pydicom.sr.codedict import codes

    return lookup_codes(name) or (codes.cid7150.Tissue, codes.SCT.Tissue)


def category_of(code: Any) -> Any | None:
    """The CID 7150 category whose segmentation CID lists ``code`` (a property type), or None.

    Example:
        >>> from pydicom.sr.coding import Code
        >>> category_of(Code("68523003", "SCT", "Cerebral white matter")).meaning
        'Anatomical Structure'
    """
    from pydicom.sr.codedict import codes

    category = _dictionary()[1].get((str(code.value), str(code.scheme_designator)))
    return None if category is None else getattr(codes.cid7150, category)


def _as_code(value: Any, where: str) -> Any:
    """A pydicom ``Code`` from a Code/CodedConcept or ``(value, scheme, meaning)``."""
    from pydicom.sr.coding import Code

    if all(hasattr(value, a) for a in ("value", "scheme_designator", "meaning")):
        return value
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 3
        and all(isinstance(v, str | int) and str(v).strip() for v in value)
    ):
        code_value, scheme, meaning = (str(v).strip() for v in value)
        if len(meaning) > 64:
            raise ConfigError(f"{where}: the meaning {meaning[:70]!r}... has over 64 characters.")
        return Code(code_value, scheme, meaning)
    raise ConfigError(
        f"{where}={value!r} must be a code (value, scheme, meaning), e.g. "
        "('389080008', 'SCT', 'White Matter'), or a pydicom Code / highdicom CodedConcept."
    )


def parse_label(value: Any, spec: Any) -> Segment:
    """One entry of ``save_dicom_seg(labels=...)`` as a :class:`Segment`.

    ``spec`` is one of:

    - a name, e.g. ``"white matter"``: codes looked up (:func:`lookup_codes`), else "Tissue";
    - ``{"name": ..., "type": code, "category": code}``, codes as ``(value, scheme, meaning)``
      or pydicom/highdicom codes; ``category`` may be left out when the type is a segmentation
      property type of pydicom's dictionary; with only ``"name"`` the name is looked up;
    - ``(name, category_code, type_code)``.

    Example:
        >>> s = parse_label(1, {"name": "WM", "type": ("68523003", "SCT", "Cerebral white matter")})
        >>> s.name, s.category.meaning, s.type.value, s.known
        ('WM', 'Anatomical Structure', '68523003', True)
    """
    where = f"labels[{value}]"
    if isinstance(spec, str):
        codes = lookup_codes(spec)
        return Segment(int(value), spec, *(codes or segment_codes(spec)), codes is not None)
    if isinstance(spec, tuple) and len(spec) == 3 and isinstance(spec[0], str):
        category, kind = _as_code(spec[1], f"{where}[1]"), _as_code(spec[2], f"{where}[2]")
        return Segment(int(value), spec[0], category, kind, True)
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where} must be a name, {{'name': ..., 'type': code, 'category': code}} or "
            f"(name, category_code, type_code); got {spec!r}."
        )
    unknown = sorted(set(map(str, spec)) - {"name", "category", "type"})
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}; allowed: name, category, type.")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where} needs a 'name' (the segment label), e.g. {{'name': 'liver'}}.")
    if spec.get("type") is None:
        if spec.get("category") is not None:
            raise ConfigError(
                f"{where} gives a category but no 'type'; add the type code, e.g. "
                "'type': ('389080008', 'SCT', 'White Matter'), or leave both out."
            )
        return parse_label(value, name)
    kind = _as_code(spec["type"], f"{where}.type")
    if spec.get("category") is not None:
        return Segment(
            int(value), name, _as_code(spec["category"], f"{where}.category"), kind, True
        )
    category = category_of(kind)
    if category is None:
        raise ConfigError(
            f"{where}.category: {kind.value} ({kind.scheme_designator}) is not a segmentation "
            "property type of pydicom's dictionary, so its category is unknown; give it, e.g. "
            "'category': ('91723000', 'SCT', 'Anatomical Structure')."
        )
    return Segment(int(value), name, category, kind, True)
