"""engine.colour's temperature and tint conversions match colour-science exactly (they replace it on the render
path because importing colour-science costs more than a second)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engine.colour import _TINT_SCALE, temperature_tint_to_xy, xy_to_temperature_tint

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # colour-science warns that matplotlib is missing or slow
    colour = pytest.importorskip("colour")

_RNG = np.random.default_rng(12)
WHITES = [np.array([x, y]) for x, y in zip(_RNG.uniform(0.2, 0.55, 400), _RNG.uniform(0.2, 0.45, 400),
                                           strict=True)] + [np.array([0.3127, 0.329]), np.array([0.4476, 0.4074])]
TEMPERATURES = [(t, tint) for t, tint in zip(_RNG.uniform(1000, 30000, 400), _RNG.uniform(-150, 150, 400),
                                             strict=True)] + [(1667.0, 0.0), (25000.0, 0.0), (6500.0, 10.0)]


def test_temperature_and_tint_of_a_white_equal_colour_science_robertson() -> None:
    for xy in WHITES:
        cct, duv = colour.temperature.uv_to_CCT_Robertson1968(colour.xy_to_UCS_uv(xy))
        assert xy_to_temperature_tint(xy) == (float(cct), float(duv * _TINT_SCALE))


def test_white_of_a_temperature_and_tint_equals_colour_science_robertson() -> None:
    for temperature, tint in TEMPERATURES:
        clipped = float(np.clip(temperature, 1667.0, 25000.0))
        uv = colour.temperature.CCT_to_uv_Robertson1968(np.array([clipped, tint / _TINT_SCALE]))
        np.testing.assert_array_equal(temperature_tint_to_xy(temperature, tint), colour.UCS_uv_to_xy(uv))


def test_temperature_and_tint_round_trip() -> None:
    for temperature, tint in [(2850.0, 0.0), (5003.0, 12.0), (6504.0, -20.0), (9000.0, 5.0)]:
        back = xy_to_temperature_tint(temperature_tint_to_xy(temperature, tint))
        assert back == pytest.approx((temperature, tint), rel=2e-3, abs=0.5)


def test_scale_channels_equals_numpys_broadcast_in_place() -> None:
    """engine.channels works along rows for speed; the result must be numpy's per-channel broadcast, in place,
    for a whole image and for a view that rows would copy."""
    from engine.channels import scale_channels

    image = np.random.default_rng(0).random((5, 7, 3), dtype=np.float32)
    factors, offsets = np.array([2.0, 0.5, 3.0], np.float32), np.array([0.1, 0.2, 0.3], np.float32)
    for target in (image.copy(), image.copy()[:, ::2]):
        expected = target * factors + offsets
        assert scale_channels(target, factors, offsets) is target
        assert np.allclose(target, expected, rtol=1e-6)
