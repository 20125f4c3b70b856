"""predict's feedback: a progress bar over windows/slices, and unwritable outputs named."""

from __future__ import annotations

import pytest
import torch

import medtransfer as mt
from medtransfer.errors import OutputPathError
from medtransfer.io.atomic import make_folder


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_predict_shows_progress_when_asked(capsys, spatial_dims):
    image = mt.data.synthetic.phantoms(1, shape=(24, 20, 6))[0]["image"]
    preset = mt.transforms.presets.ct(spatial_dims=spatial_dims, roi_size=(16,) * spatial_dims)
    conv = torch.nn.Conv2d(1, 2, 1) if spatial_dims == 2 else torch.nn.Conv3d(1, 2, 1)
    mt.evaluation.predict(conv, image, preset, device="cpu", batch_size=2)
    assert "100%" not in capsys.readouterr().err
    mt.evaluation.predict(conv, image, preset, device="cpu", batch_size=2, progress=True)
    err = capsys.readouterr().err
    assert "100%" in err


def test_an_output_folder_under_a_file_is_our_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match=r"is a file"):
        make_folder(blocker / "masks")
