"""What `hostplug info` says of a file (engine.io.source_info)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize(("make", "model", "name"), [
    ("NIKON CORPORATION", "NIKON D800", "NIKON D800"),  # the maker once, not "NIKON CORPORATION NIKON D800"
    ("Canon", "PowerShot A2500", "Canon PowerShot A2500"),  # Canon's model lost the make when it was read
    ("SONY", "ILCE-7RM3", "SONY ILCE-7RM3"),
    ("EASTMAN KODAK COMPANY", "KODAK DX4330 DIGITAL CAMERA", "KODAK DX4330 DIGITAL CAMERA"),
    ("HTC", "HTC_TyTN_II", "HTC_TyTN_II"),
    ("", "", "unknown"),
])
def test_info_names_the_camera_with_its_maker_once(make: str, model: str, name: str) -> None:
    from engine.io.source_info import camera_name

    assert camera_name(make, model) == name


def test_shooting_values_are_given_to_the_digits_they_have() -> None:
    # LibRaw's single-precision 1/125 s was printed by info --json as 0.00800000037997961
    import numpy as np

    from engine.io.source_info import _significant

    assert _significant(float(np.float32(1 / 125))) == 0.008 and _significant(float(np.float32(6.3))) == 6.3
    assert _significant(0.0) is None


def test_a_dng_renamed_like_another_raw_is_named_a_dng(sample_dng: Path, tmp_path: Path) -> None:
    import shutil

    import engine

    renamed = tmp_path / "IMG_0001.CR2"
    shutil.copyfile(sample_dng, renamed)
    assert engine.open(renamed).format == "DNG" and engine.open(sample_dng).format == "DNG"
