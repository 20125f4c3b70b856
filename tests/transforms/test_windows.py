"""CT windows: the table, the mapping HU -> [0, 1], several windows as channels, bad names."""

from __future__ import annotations

import pytest
import torch

from medtransfer.errors import ConfigError
from medtransfer.transforms import CT_WINDOWS, CTWindow, CTWindowd, resolve_windows


def test_table_has_the_named_windows():
    assert set(CT_WINDOWS) == {"abdomen", "liver", "lung", "bone", "brain", "soft_tissue"}
    assert CT_WINDOWS["abdomen"].bounds == (-160.0, 240.0)
    assert CT_WINDOWS["lung"].bounds == (-1350.0, 150.0)
    assert all(w.width > 0 for w in CT_WINDOWS.values())


def test_abdomen_window_maps_bounds_to_0_and_1_and_clips():
    hu = torch.tensor([[[-2000.0, -160.0, 40.0, 140.0, 240.0, 3000.0]]])
    out = CTWindowd("image", "abdomen")({"image": hu})["image"]
    assert out.flatten().tolist() == pytest.approx([0.0, 0.0, 0.5, 0.75, 1.0, 1.0])


def test_explicit_level_width_and_plan_dict_agree():
    hu = torch.linspace(-300, 300, 13).reshape(1, 13)
    a = CTWindowd("image", (50, 200))({"image": hu})["image"]
    b = CTWindowd("image", {"level": 50, "width": 200})({"image": hu})["image"]
    c = CTWindowd("image", CTWindow(50, 200))({"image": hu})["image"]
    assert torch.equal(a, b) and torch.equal(a, c)
    assert a[0, hu[0].tolist().index(-50.0)] == 0.0 and a[0, hu[0].tolist().index(150.0)] == 1.0


def test_several_windows_become_channels_in_order():
    hu = torch.full((1, 2, 2), 40.0)
    out = CTWindowd("image", ["brain", "lung", "bone"])({"image": hu})["image"]
    assert out.shape == (3, 2, 2)
    expected = [
        (40 - lo) / (hi - lo)
        for lo, hi in (w.bounds for w in resolve_windows(["brain", "lung", "bone"]))
    ]
    assert out[:, 0, 0].tolist() == pytest.approx(expected)


@pytest.mark.parametrize("name", ["soft tissue", "Soft-Tissue", "soft_tissue"])
def test_name_spellings(name):
    assert resolve_windows(name) == (CT_WINDOWS["soft_tissue"],)


def test_unknown_window_name_lists_names_and_suggests():
    with pytest.raises(ConfigError, match=r"window='abdomn'.*'abdomen'.*Did you mean 'abdomen'"):
        resolve_windows("abdomn")


@pytest.mark.parametrize("bad", [(40, 0), (40, -10), {"level": 40}, 3.0, []])
def test_malformed_windows_are_config_errors(bad):
    with pytest.raises(ConfigError, match="window"):
        resolve_windows(bad)
