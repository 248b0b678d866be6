"""Physically computed raw images of a synthetic scene, with their exact colour ground truth.

How the data is made
--------------------
Everything is sampled on one spectral grid, 380-780 nm in 5 nm steps (81 samples, :data:`WAVELENGTHS`); other
data is linearly interpolated onto it.

1. **Camera.** A :class:`CameraModel` holds three measured spectral sensitivities. The built-in one is
   colour-science's ``'Nikon 5100 (NPL)'`` (National Physical Laboratory measurement); the rawtoaces cameras of
   ``shared/spectral`` (11 cameras) load with :func:`load_rawtoaces_camera`.
2. **Scene.** A :class:`Scene` is an index map (H x W) into a small table of reflectance spectra, plus a
   per-pixel shading scalar. :func:`scene_colorchecker` makes the 24 patches of colour-science's
   ``'ColorChecker N Ohta'`` on a flat 18 % grey background, lit with a smooth quadratic falloff (1 at the
   brightest point, 1 - ``falloff`` at the far corner), and a disc of perfect white reflector with a Gaussian
   shading bump up to 1 + ``specular_peak`` (a specular highlight: it reflects the illuminant's spectrum).
3. **Light and integration.** For each table entry, reflectance x illuminant SPD is integrated (a plain sum on
   the grid) against the camera sensitivities and against the CIE 1931 2-degree colour-matching functions.
   Camera RGB is divided by the green response to a perfect white under the same light; XYZ is divided by the
   illuminant's Y. So a perfect white at shading 1 gives camera RGB = the camera neutral (green 1) and Y = 1.
4. **Exposure.** One gain scales both: it puts the brightest channel of the brightest non-specular pixel at
   0.8 of the raw range, times ``2 ** exposure``. Pixel values are ``gain * table[index] * shading``.
5. **Raw.** The camera RGB is sampled on an RGGB Bayer mosaic. Noise is Poisson-Gaussian on the signal ``s``
   (fraction of white - black): photo-electrons are Poisson with mean ``s / S`` and are scaled back by ``S``,
   where ``S = SHOT_GAIN * ISO / 100`` (a 25 000 e- full well at ISO 100); read noise is Gaussian with variance
   ``O = (READ_NOISE_E * S) ** 2 + (ADC_NOISE_DN / (white - black)) ** 2`` (3 e- before the gain, 2 DN after).
   So the variance is ``S * s + O``, exactly the DNG NoiseProfile model. Values are then
   ``round(black + s * (white - black))`` clipped to [0, white], black 512, white 16383 (14-bit), uint16.
   Random numbers come from ``numpy.random.default_rng(seed)``: the same seed gives identical data.
6. **Ground truth** (:class:`SyntheticRaw`): per-pixel scene-referred XYZ under the scene illuminant (not
   adapted; same gain as the raw, so a perfect white at shading 1 has Y = gain), the illuminant white's xy, the
   camera neutral (camera response to a perfect white, green = 1; AsShotNeutral), and linear sRGB: the XYZ
   Bradford-adapted from the illuminant white to D65, then through the sRGB matrix. Noiseless camera RGB is
   ``SyntheticRaw.camera_rgb``.
7. **DNG matrices.** :func:`fit_color_matrix` fits XYZ -> camera RGB by least squares over reflectances (the
   190 rawtoaces training spectra when ``shared/spectral`` is present, else the 24 ColorChecker ones), with the
   constraint that the illuminant white maps exactly onto the camera white, scaled so its largest channel is 1
   (as DNG asks). :func:`write_dng` stores ColorMatrix1 for CIE A (CalibrationIlluminant 17) and ColorMatrix2
   for D65 (21).

The bundled sample (``python -m engine.training.synthetic --write-sample engine/samples/hostplug_colorchecker.dng``) is
900 x 600 px, Nikon 5100 (NPL), CIE D55 daylight (between the two calibration illuminants, so a raw converter
has to interpolate its matrices, as with real daylight shots), ISO 200, 1/125 s, f/8, seed 0, written with
``shared/spectral`` present (matrices fitted on the 190 spectra). About 1.1 MB, uncompressed 16-bit.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.colour import D50_XY, D65_XY, SRGB, bradford_adaptation, srgb_encode, xyz_to_xy

WAVELENGTHS = np.arange(380.0, 781.0, 5.0)
BLACK_LEVEL = 512
WHITE_LEVEL = 16383
CFA_PATTERN = "RGGB"
SHOT_GAIN = 1 / 25000  # normalised signal per photo-electron at ISO 100
READ_NOISE_E = 3.0  # read noise before the ISO gain, electrons
ADC_NOISE_DN = 2.0  # read noise after the ISO gain, DN
AUTO_LEVEL = 0.8  # raw level of the brightest non-specular pixel at exposure 0

SPECTRAL_DIR = Path(
    os.environ.get(
        "HOSTPLUG_SPECTRAL", Path(__file__).resolve().parents[3] / "shared/spectral/rawtoaces/data"
    )
)
SAMPLE_PATH = Path(__file__).resolve().parents[1] / "samples" / "hostplug_colorchecker.dng"

_CFA_CHANNELS = np.array([[0, 1], [1, 2]])  # RGGB as channel indices
_ILLUMINANT_A, _ILLUMINANT_D65 = 17, 21  # EXIF LightSource codes used by CalibrationIlluminant


@dataclass(frozen=True)
class CameraModel:
    """A camera's spectral sensitivities, sampled on :data:`WAVELENGTHS` as an (n, 3) array (R, G, B)."""

    name: str
    wavelengths: np.ndarray
    sensitivities: np.ndarray


@dataclass(frozen=True)
class Scene:
    """A scene as an (H, W) index map into a table of reflectances (k, n) plus an (H, W) shading scalar."""

    reflectances: np.ndarray
    names: tuple[str, ...]
    specular: tuple[bool, ...]  # per table entry: a highlight, left out of auto exposure
    index: np.ndarray
    shading: np.ndarray


@dataclass(frozen=True)
class SyntheticRaw:
    """A rendered raw mosaic and the exact ground truth it was made from (see the module docstring).

    ``scene``, ``patch_rgb`` and ``xyz`` are None for a raw made from a photograph rather than a synthetic scene
    (the held-out test raws of :mod:`engine.training.pipeline_eval` and :mod:`engine.training.eval_looks`)."""

    cfa: np.ndarray  # (H, W) uint16, RGGB, black/white levels below
    black_level: int
    white_level: int
    iso: float
    noise_profile: tuple[float, float]  # (S, O): variance = S * signal + O, signal in [0, 1]
    camera: CameraModel
    scene: Scene | None
    gain: float  # exposure gain applied to camera RGB and XYZ alike
    patch_rgb: np.ndarray | None  # (k, 3) camera RGB of each table entry at shading 1, as raw signal in [0, 1]
    camera_neutral: np.ndarray  # (3,) camera response to a perfect white, green = 1
    white_xy: np.ndarray  # (2,) chromaticity of the scene illuminant
    xyz: np.ndarray | None  # (H, W, 3) float32, scene-referred XYZ under the scene illuminant
    linear_srgb: np.ndarray  # (H, W, 3) float32, XYZ adapted to D65 (Bradford), linear sRGB

    @property
    def camera_rgb(self) -> np.ndarray:
        """Noiseless, unclipped linear camera RGB per pixel (H, W, 3), as raw signal in [0, 1]."""
        if self.scene is None or self.patch_rgb is None:
            raise ValueError("camera_rgb: this raw was made from a photograph, not a synthetic scene")
        return (self.patch_rgb[self.scene.index] * self.scene.shading[..., None]).astype(np.float32)

    @property
    def xyz_d50(self) -> np.ndarray:
        """The XYZ ground truth Bradford-adapted to D50 (the DNG/ICC connection space)."""
        if self.xyz is None:
            raise ValueError("xyz_d50: this raw was made from a photograph, not a synthetic scene")
        return (self.xyz @ bradford_adaptation(self.white_xy, D50_XY).T).astype(np.float32)


def _on_grid(wavelengths: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linearly interpolate spectra (n,) or (n, m) given at ``wavelengths`` onto :data:`WAVELENGTHS`."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        return np.interp(WAVELENGTHS, wavelengths, values)
    return np.stack([np.interp(WAVELENGTHS, wavelengths, v) for v in values.T], axis=1)


def _read_rawtoaces(path: Path) -> np.ndarray:
    """An (n, m) array of a rawtoaces spectral JSON file, interpolated onto :data:`WAVELENGTHS`."""
    data = json.loads(Path(path).read_text())["spectral_data"]["data"]["main"]
    wavelengths = np.array([float(w) for w in data])
    return _on_grid(wavelengths, np.array(list(data.values())))


def camera_from_colour(name: str = "Nikon 5100 (NPL)") -> CameraModel:
    """A camera from colour-science's ``MSDS_CAMERA_SENSITIVITIES`` (``'Nikon 5100 (NPL)'`` is the default)."""
    import colour

    msds = colour.MSDS_CAMERA_SENSITIVITIES[name]
    return CameraModel(name, WAVELENGTHS, _on_grid(msds.wavelengths, msds.values))


def load_rawtoaces_camera(path: str | Path) -> CameraModel:
    """A camera from a rawtoaces ``camera/*.json`` sensitivity file (named after make and model)."""
    header = json.loads(Path(path).read_text())["header"]
    name = f"{header['manufacturer'].title()} {header['model'].upper()} (rawtoaces)"
    return CameraModel(name, WAVELENGTHS, _read_rawtoaces(Path(path)))


def illuminant(name: str | float) -> np.ndarray:
    """An illuminant SPD on :data:`WAVELENGTHS`: a colour-science name ('A', 'D55', 'FL2', ...) or a CCT in K.

    A CCT of 4000 K or more gives the CIE daylight (D-series) SPD, a lower one a blackbody.
    """
    import colour

    if isinstance(name, str):
        sd = colour.SDS_ILLUMINANTS[name]
    elif name >= 4000:
        xy = colour.temperature.CCT_to_xy_CIE_D(float(name))
        sd = colour.sd_CIE_illuminant_D_series(xy)
    else:
        sd = colour.sd_blackbody(float(name))
    return _on_grid(sd.wavelengths, sd.values)


def _cmfs() -> np.ndarray:
    """The CIE 1931 2-degree colour-matching functions on :data:`WAVELENGTHS`, (n, 3)."""
    import colour

    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    return _on_grid(cmfs.wavelengths, cmfs.values)


def colorchecker_reflectances() -> tuple[np.ndarray, tuple[str, ...]]:
    """The 24 ColorChecker reflectances (colour-science's 'ColorChecker N Ohta'), (24, n), and their names."""
    import colour

    sds = colour.SDS_COLOURCHECKERS["ColorChecker N Ohta"]
    return np.stack([_on_grid(sd.wavelengths, sd.values) for sd in sds.values()]), tuple(sds)


def training_reflectances() -> np.ndarray:
    """Reflectances to fit matrices on: the 190 rawtoaces spectra if present, else the 24 ColorChecker ones."""
    path = SPECTRAL_DIR / "training" / "training_spectral.json"
    return _read_rawtoaces(path).T if path.is_file() else colorchecker_reflectances()[0]


def _camera_and_xyz(
    camera: CameraModel, spd: np.ndarray, reflectances: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Camera RGB and XYZ of reflectances (k, n) under ``spd``, plus those of a perfect white.

    Camera RGB is unnormalised; XYZ is divided by the illuminant's Y.
    """
    lit = reflectances * spd
    cmfs = _cmfs()
    y_white = float(spd @ cmfs[:, 1])
    return lit @ camera.sensitivities, lit @ cmfs / y_white, spd @ camera.sensitivities, spd @ cmfs / y_white


def fit_color_matrix(
    camera: CameraModel, illuminant_spd: np.ndarray, reflectances: np.ndarray | None = None
) -> np.ndarray:
    """The DNG ColorMatrix (XYZ -> camera RGB) of ``camera`` under ``illuminant_spd``.

    Least squares over ``reflectances`` (default :func:`training_reflectances`), constrained so the
    illuminant white (Y = 1) maps exactly to the camera white, normalised so its largest channel is 1.
    """
    refl = training_reflectances() if reflectances is None else reflectances
    rgb, xyz, rgb_white, xyz_white = _camera_and_xyz(camera, illuminant_spd, refl)
    scale = rgb_white.max()
    rgb, rgb_white = rgb / scale, rgb_white / scale
    # Per row m: minimise |xyz m - rgb|^2 subject to xyz_white . m = rgb_white (a Lagrange multiplier).
    gram_inv = np.linalg.inv(xyz.T @ xyz)
    free = gram_inv @ xyz.T @ rgb  # (3, 3), columns are the unconstrained rows
    direction = gram_inv @ xyz_white
    free += np.outer(direction, (rgb_white - xyz_white @ free) / (xyz_white @ direction))
    return free.T


def scene_colorchecker(height: int, width: int, *, falloff: float = 0.3, specular_peak: float = 3.0) -> Scene:
    """A ColorChecker chart (6 x 4 patches) on 18 % grey, with a light falloff and a specular white disc.

    Table entries: 0 the grey background, 1-24 the ColorChecker patches in chart order, 25 a perfect white
    reflector (the specular disc). See the module docstring for the shading.
    """
    patches, patch_names = colorchecker_reflectances()
    n = len(WAVELENGTHS)
    table = np.concatenate([np.full((1, n), 0.18), patches, np.ones((1, n))])
    names = ("background", *patch_names, "specular")
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (x + 0.5) / width - 0.4, (y + 0.5) / height - 0.4
    shading = 1.0 - falloff * (u**2 + v**2) / 0.72
    index = np.zeros((height, width), dtype=np.uint8)
    cell = min(width / 8, height / 5)
    x0, y0 = (width - 7 * cell) / 2, (height - 4 * cell) / 2
    for i in range(24):
        left, top = x0 + (i % 6 + 0.1) * cell, y0 + (i // 6 + 0.1) * cell
        inside = (x >= left) & (x < left + 0.8 * cell) & (y >= top) & (y < top + 0.8 * cell)
        index[inside] = i + 1
    d2 = (x - (x0 + 6.6 * cell)) ** 2 + (y - (y0 + 0.5 * cell)) ** 2
    radius = 0.35 * cell
    disc = d2 < radius**2
    index[disc] = len(table) - 1
    shading = np.where(disc, shading * (1 + specular_peak * np.exp(-d2 / (0.5 * radius**2))), shading)
    specular = tuple(name == "specular" for name in names)
    return Scene(table, names, specular, index, shading.astype(np.float32))


def noise_profile(iso: float) -> tuple[float, float]:
    """(S, O) of the noise model at ``iso``: variance = S * signal + O, signal in [0, 1] of white - black."""
    shot = SHOT_GAIN * iso / 100
    return shot, (READ_NOISE_E * shot) ** 2 + (ADC_NOISE_DN / (WHITE_LEVEL - BLACK_LEVEL)) ** 2


def render_raw(
    camera: CameraModel,
    illuminant_spd: np.ndarray,
    scene: Scene,
    *,
    iso: float = 100,
    exposure: float = 0.0,
    noise: bool = True,
    seed: int = 0,
) -> SyntheticRaw:
    """Render ``scene`` lit by ``illuminant_spd`` as an RGGB raw of ``camera``, with its ground truth.

    ``exposure`` is in EV relative to the auto exposure (brightest non-specular pixel at 0.8 of the range).
    """
    height, width = scene.index.shape
    if height % 2 or width % 2:
        raise ValueError(f"a Bayer raw needs an even size, got {width} x {height}")
    rgb, xyz, rgb_white, xyz_white = _camera_and_xyz(camera, illuminant_spd, scene.reflectances)
    rgb, neutral = rgb / rgb_white[1], rgb_white / rgb_white[1]
    level = rgb.max(axis=1)[scene.index] * scene.shading
    non_specular = ~np.asarray(scene.specular)[scene.index]
    gain = AUTO_LEVEL / float(level[non_specular].max()) * 2.0**exposure
    patch_rgb = rgb * gain
    channels = np.tile(_CFA_CHANNELS, (height // 2, width // 2))
    signal = patch_rgb[scene.index, channels] * scene.shading
    shot, read = noise_profile(iso)
    if noise:
        rng = np.random.default_rng(seed)
        signal = rng.poisson(np.maximum(signal, 0.0) / shot) * shot + rng.normal(
            0.0, np.sqrt(read), signal.shape
        )
    dn = np.round(BLACK_LEVEL + signal * (WHITE_LEVEL - BLACK_LEVEL))
    cfa = np.clip(dn, 0, WHITE_LEVEL).astype(np.uint16)
    white_xy = xyz_to_xy(xyz_white)
    pixel_xyz = (xyz * gain)[scene.index] * scene.shading[..., None]
    to_srgb = np.linalg.inv(SRGB.rgb_to_xyz) @ bradford_adaptation(white_xy, D65_XY)
    return SyntheticRaw(
        cfa=cfa,
        black_level=BLACK_LEVEL,
        white_level=WHITE_LEVEL,
        iso=float(iso),
        noise_profile=(shot, read),
        camera=camera,
        scene=scene,
        gain=gain,
        patch_rgb=patch_rgb,
        camera_neutral=neutral,
        white_xy=white_xy,
        xyz=pixel_xyz.astype(np.float32),
        linear_srgb=(pixel_xyz @ to_srgb.T).astype(np.float32),
    )


def _rationals(values: np.ndarray | list[float], denominator: int = 1_000_000) -> tuple[int, ...]:
    """Flattened (numerator, denominator) pairs of TIFF (S)RATIONAL values, rounded to 1 / ``denominator``."""
    pairs = [Fraction(round(float(v) * denominator), denominator) for v in np.ravel(values)]
    return tuple(n for f in pairs for n in (f.numerator, f.denominator))


def _fraction(value: float) -> tuple[int, int]:
    """The simplest (numerator, denominator) close to ``value``, for exposure times and f-numbers."""
    fraction = Fraction(value).limit_denominator(100_000)
    return fraction.numerator, fraction.denominator


def write_dng(
    path: str | Path,
    raw: SyntheticRaw,
    *,
    make: str,
    model: str,
    iso: float,
    exposure_time: float,
    f_number: float,
    orientation: int = 1,
    baseline_exposure: float = 0.0,
    noise_profile: tuple[float, float] | None = None,
    pattern: np.ndarray = _CFA_CHANNELS,
    opcode_lists: dict[int, bytes] | None = None,
    xmp: bytes | None = None,
) -> None:
    """Write ``raw`` as an uncompressed DNG 1.4: an 8-bit sRGB preview in IFD0, the CFA raw in a SubIFD.

    ColorMatrix1/2 are fitted for CIE A and D65; AsShotNeutral is the scene's camera neutral. Make, Model and
    the exposure (ISOSpeedRatings, ExposureTime, FNumber) are TIFF/EP tags of IFD0, which EXIF readers see.
    ``pattern`` is the colour filter array that ``raw.cfa`` was sampled with, as channel indices (R 0, G 1, B 2):
    RGGB unless said, a 6 x 6 array for an X-Trans sensor. ``opcode_lists`` are OpcodeList1/2/3 tags of the raw
    IFD (51008, 51009, 51022: the encoded lists, DNG 1.3 chapter 7). ``xmp`` is an XMP packet for IFD0's tag 700,
    where Lightroom keeps a DNG's develop settings and rotation.
    """
    import tifffile

    matrix1 = fit_color_matrix(raw.camera, illuminant("A"))
    matrix2 = fit_color_matrix(raw.camera, illuminant("D65"))
    step = max(1, max(raw.cfa.shape) // 160)
    preview = np.round(srgb_encode(raw.linear_srgb[::step, ::step]) * 255).astype(np.uint8)
    ifd0 = [
        (271, "s", 0, make, True),
        (272, "s", 0, model, True),
        (274, "H", 1, orientation, True),
        (33434, "2I", 1, _fraction(exposure_time), True),
        (33437, "2I", 1, _fraction(f_number), True),
        (34855, "H", 1, round(iso), True),
        (50706, "B", 4, (1, 4, 0, 0), True),
        (50707, "B", 4, (1, 1, 0, 0), True),
        (50708, "s", 0, f"{make} {model}", True),
        (50721, "2i", 9, _rationals(matrix1, 10000), True),
        (50722, "2i", 9, _rationals(matrix2, 10000), True),
        (50728, "2I", 3, _rationals(raw.camera_neutral), True),
        (50730, "2i", 1, _rationals([baseline_exposure], 10000), True),
        (50778, "H", 1, _ILLUMINANT_A, True),
        (50779, "H", 1, _ILLUMINANT_D65, True),
    ]
    if noise_profile is not None:
        ifd0.append((51041, "d", 2, tuple(noise_profile), True))
    if xmp is not None:
        ifd0.append((700, "B", len(xmp), xmp, True))
    cfa_tags: list[tuple[int, int | str, int, object, bool]] = [
        (33421, "H", 2, tuple(int(n) for n in pattern.shape), True),
        (33422, "B", pattern.size, tuple(int(c) for c in pattern.ravel()), True),
        (50710, "B", 3, (0, 1, 2), True),
        (50711, "H", 1, 1, True),
        (50713, "H", 2, (1, 1), True),
        (50714, "H", 1, raw.black_level, True),
        (50717, "H", 1, raw.white_level, True),
    ]
    cfa_tags += [(code, 7, len(data), data, True) for code, data in (opcode_lists or {}).items()]
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            preview,
            photometric="rgb",
            subfiletype=1,
            subifds=1,
            extratags=ifd0,
            metadata=None,
            software="hostplug engine.training.synthetic",
        )
        tif.write(
            raw.cfa, photometric="cfa", subfiletype=0, extratags=cfa_tags, metadata=None, software=False
        )


def write_sample(path: str | Path = SAMPLE_PATH, seed: int = 0) -> None:
    """Write the bundled sample: 900 x 600, Nikon 5100 (NPL), CIE D55, ISO 200, 1/125 s, f/8."""
    raw = render_raw(
        camera_from_colour(), illuminant("D55"), scene_colorchecker(600, 900), iso=200, seed=seed
    )
    write_dng(
        path,
        raw,
        make="hostplug",
        model="Synthetic Nikon 5100 (NPL)",
        iso=200,
        exposure_time=1 / 125,
        f_number=8.0,
        noise_profile=raw.noise_profile,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m engine.training.synthetic --write-sample PATH [--seed N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write-sample", type=Path, default=SAMPLE_PATH, help="where to write the sample DNG"
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    args = parser.parse_args(argv)
    args.write_sample.parent.mkdir(parents=True, exist_ok=True)
    write_sample(args.write_sample, args.seed)


if __name__ == "__main__":
    main()
