"""Weight resolution: explicit file -> cache -> package -> hub (faked), checksums, offline errors."""

from __future__ import annotations

import shutil

import pytest
import torch

import medtransfer as mt
from medtransfer.encoders import sources
from medtransfer.encoders.weight_packages import PACKAGE_WEIGHTS, find_package_source
from medtransfer.errors import WeightsError

LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


@pytest.fixture
def no_hub(monkeypatch):
    """Fail the test if anything tries to reach the hub."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the hub must not be contacted")

    monkeypatch.setattr(sources, "_hub_download", forbidden)


def test_cache_dir_follows_medtransfer_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTRANSFER_HOME", str(tmp_path / "home"))
    assert sources.cache_file("resnet18") == tmp_path / "home" / "weights" / "resnet18.safetensors"
    monkeypatch.delenv("MEDTRANSFER_HOME")
    assert sources.medtransfer_home() == sources.Path("~/.cache/medtransfer").expanduser()


def test_offline_missing_weights_message_says_what_where_how(no_hub):
    with pytest.raises(WeightsError) as info:
        mt.encoders.create("resnet18", weights="imagenet")
    message = str(info.value)
    target = sources.cache_file("resnet18")
    assert str(target) in message  # where to put it
    assert "timm/resnet18.a1_in1k" in message and "model.safetensors" in message  # which file
    assert "hf_hub_download" in message and "import_weights" in message  # how to fetch it
    assert "HF_HUB_OFFLINE" in message


def test_explicit_file_is_used_and_checksummed(resnet18_file, no_hub):
    digest = sources.sha256_file(resnet18_file)
    resolved = sources.resolve_weights("resnet18", resnet18_file, sha256=digest)
    assert (resolved.source.kind, resolved.path, resolved.sha256) == ("file", resnet18_file, digest)
    with pytest.raises(WeightsError, match="Checksum mismatch"):
        sources.resolve_weights("resnet18", resnet18_file, sha256="0" * 64)
    with pytest.raises(WeightsError, match="not found"):
        sources.resolve_weights("resnet18", resnet18_file.with_name("nope.pth"))


def test_import_weights_then_cache_is_found_offline(resnet18_file, no_hub):
    cached = mt.encoders.import_weights("resnet18", resnet18_file)
    assert cached == sources.cache_file("resnet18")
    assert not list(cached.parent.glob("*.tmp"))  # atomic: no temporary left behind
    sidecar = cached.with_name(cached.name + ".sha256")
    assert sidecar.read_text().split()[0] == sources.sha256_file(cached)
    encoder = mt.encoders.create("resnet18", weights="imagenet", in_channels=3)
    assert encoder.weights.source.kind == "cache" and encoder.weights.path == cached
    reference = sources.load_state_dict_file(resnet18_file)["conv1.weight"]
    assert torch.equal(encoder.body.conv1.weight.detach(), reference)


def test_corrupted_cache_file_is_a_checksum_error(resnet18_file, no_hub):
    cached = mt.encoders.import_weights("resnet18", resnet18_file)
    data = bytearray(cached.read_bytes())
    data[-10] ^= 0xFF  # flip bits in the tensor data: still loadable, but wrong
    cached.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="Checksum mismatch"):
        mt.encoders.create("resnet18", weights="imagenet")


def test_cache_takes_precedence_over_package(lite0_available, tmp_path, no_hub):
    import timm
    from safetensors.torch import save_file

    own = tmp_path / "lite0.safetensors"
    save_file(timm.create_model("tf_efficientnet_lite0").state_dict(), str(own))
    assert sources.resolve_weights("tf_efficientnet_lite0", "imagenet").source.kind == "package"
    mt.encoders.import_weights("tf_efficientnet_lite0", own)
    assert sources.resolve_weights("tf_efficientnet_lite0", "imagenet").source.kind == "cache"


def test_package_source_is_registered_with_checksum(lite0_available):
    source = find_package_source("tf_efficientnet_lite0")
    assert source.kind == "package" and source.key_layout == "in_order"
    assert source.sha256 == LITE0_SHA256
    assert sources.sha256_file(source.location) == LITE0_SHA256
    assert {p.template.architecture for p in PACKAGE_WEIGHTS} >= {
        "tf_efficientnet_lite0",
        "tf_efficientnet_lite1",
        "tf_efficientnet_lite2",
    }


def test_package_checksum_mismatch_is_refused(lite0_available, monkeypatch, tmp_path):
    source = find_package_source("tf_efficientnet_lite0")
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    shutil.copyfile(source.location, fake)
    with open(fake, "r+b") as handle:
        handle.seek(-100, 2)
        handle.write(b"\x00" * 8)
    tampered = sources.WeightSource(**{**source.__dict__, "location": str(fake)})
    monkeypatch.setattr(sources, "find_package_source", lambda arch: tampered)
    with pytest.raises(WeightsError, match="Checksum mismatch"):
        sources.resolve_weights("tf_efficientnet_lite0", "imagenet")


def test_hub_is_used_only_when_online_and_lands_in_cache(resnet18_file, monkeypatch):
    calls = []

    def fake_download(repo_id, filename):
        calls.append((repo_id, filename))
        return str(resnet18_file)

    monkeypatch.setattr(sources, "_hub_download", fake_download)
    with pytest.raises(WeightsError):  # offline (conftest sets HF_HUB_OFFLINE=1)
        sources.resolve_weights("resnet18", "imagenet")
    assert calls == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    resolved = sources.resolve_weights("resnet18", "imagenet")
    assert calls == [("timm/resnet18.a1_in1k", "model.safetensors")]
    assert resolved.source.kind == "hub" and resolved.path == sources.cache_file("resnet18")
    again = sources.resolve_weights("resnet18", "imagenet")  # now offline-ready
    assert again.source.kind == "cache" and len(calls) == 1


def test_hub_failure_is_a_weights_error(monkeypatch):
    def failing(repo_id, filename):
        raise OSError("connection refused")

    monkeypatch.setattr(sources, "_hub_download", failing)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(WeightsError, match="connection refused"):
        sources.resolve_weights("resnet18", "imagenet")


def test_list_encoders_reports_offline_weights(lite0_available, resnet18_file):
    rows = {row.name: row for row in mt.encoders.list_encoders()}
    assert rows["resnet18"].family == "resnet" and rows["resnet18"].tested
    assert not rows["resnet18"].weights_offline
    assert rows["tf_efficientnet_lite0"].weights_offline
    assert rows["tf_efficientnet_lite0"].weights_source.startswith("package: ")
    assert {"resnet", "efficientnet", "convnext", "densenet"} <= {r.family for r in rows.values()}
    mt.encoders.import_weights("resnet18", resnet18_file)
    offline = {row.name for row in mt.encoders.list_encoders(available_offline=True)}
    assert {"resnet18", "tf_efficientnet_lite0"} <= offline
    assert "resnet50" not in offline


def test_importing_a_package_file_by_hand_maps_it_to_timm_keys(lite0_available, no_hub):
    """Air-gapped route: the lite0 .pth copied by hand, imported, then found in the cache."""
    package_file = find_package_source("tf_efficientnet_lite0").location
    cached = mt.encoders.import_weights("tf_efficientnet_lite0", package_file, sha256=LITE0_SHA256)
    assert "conv_stem.weight" in sources.load_state_dict_file(cached)
    from_cache = mt.encoders.create("tf_efficientnet_lite0", in_channels=3)
    assert from_cache.weights.source.kind == "cache"
    from_file = mt.encoders.create("tf_efficientnet_lite0", weights=package_file, in_channels=3)
    for a, b in zip(from_cache.state_dict().values(), from_file.state_dict().values()):
        assert torch.equal(a, b)


def test_package_file_dropped_into_cache_by_hand_is_recognised(lite0_available, no_hub):
    package_file = find_package_source("tf_efficientnet_lite0").location
    target = sources.cache_file("tf_efficientnet_lite0").with_suffix(".pth")
    target.parent.mkdir(parents=True)
    shutil.copyfile(package_file, target)
    encoder = mt.encoders.create("tf_efficientnet_lite0", in_channels=3)
    assert encoder.weights.source.kind == "cache" and encoder.weights.path == target
    assert encoder.weights.source.key_layout == "in_order"
    assert encoder.weights.sha256 == LITE0_SHA256
