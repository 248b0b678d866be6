"""The hand-written ICC profiles load in littlecms and describe the spaces engine.colour encodes into."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from engine.colour import SPACES, encode, srgb_decode, srgb_encode, srgb_to_space_matrix
from engine.output.icc import icc_profile

# sRGB-encoded test colours: primaries, greys and saturated in-gamut colours.
COLOURS = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.5, 0.5, 0.5],
        [1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0],
        [0.02, 0.01, 0.03],
        [0.2, 0.6, 0.3],
        [0.9, 0.8, 0.1],
        [0.8, 0.2, 0.7],
    ],
    dtype=np.float32,
)


def _decode(encoded: np.ndarray, transfer: str) -> np.ndarray:
    """Invert engine.colour.encode numerically, so the test shares no formula with the profile."""
    grid = np.linspace(0.0, 1.0, 200001)
    return np.interp(encoded, encode(grid, transfer).astype(np.float64), grid)


@pytest.mark.parametrize("key", list(SPACES))
def test_profile_loads_and_names_the_space(key: str) -> None:
    data = icc_profile(SPACES[key])
    profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
    assert ImageCms.getProfileDescription(profile).strip() == SPACES[key].name
    assert int.from_bytes(data[:4], "big") == len(data)
    assert data[12:24] == b"mntrRGB XYZ " and data[36:40] == b"acsp"
    # version 2.1, as Lightroom embeds: Firefox (by default) and older viewers pass over a version 4 profile and
    # show a wide-gamut image as sRGB (a tester's)
    assert data[8:12] == bytes([2, 0x10, 0, 0]) and data[84:100] == b"\0" * 16


@pytest.mark.parametrize("key", list(SPACES))
def test_littlecms_converts_our_encoding_back_to_srgb(key: str) -> None:
    space = SPACES[key]
    linear = srgb_decode(COLOURS) @ srgb_to_space_matrix(space).T
    encoded = np.round(encode(linear, space.transfer) * 255).astype(np.uint8)
    # What exact maths gives from the 8-bit values littlecms sees (8-bit ProPhoto alone is off by several levels).
    expected = srgb_encode(
        _decode(encoded / 255, space.transfer) @ np.linalg.inv(srgb_to_space_matrix(space)).T
    )
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile(space)))
    converted = ImageCms.profileToProfile(
        Image.fromarray(encoded[None]),
        source,
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    assert np.abs(np.asarray(converted)[0].astype(float) - expected * 255).max() <= 1.0


def test_profiles_are_cached_and_distinct() -> None:
    assert icc_profile(SPACES["srgb"]) is icc_profile(SPACES["srgb"])
    assert len({icc_profile(space) for space in SPACES.values()}) == len(SPACES)
