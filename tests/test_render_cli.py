"""``hostplug render``: output formats, colour spaces, resizing, stage dumps, JSON, devices and recipe options.

Renders use the bundled 900 x 600 synthetic DNG (about a second each) and tiny sRGB images.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms

import engine
from engine import STAGE_ORDER, Recipe
from tests.conftest import error_lines, hostplug, hostplug_process, read_metadata, tiff_icc_description


def render(*args: object) -> None:
    result = hostplug("render", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""


def recipe_of(path: Path) -> Recipe:
    return Recipe.from_json(read_metadata(path)[1]["Xmp.hostplug.recipe"])


def decided(path: Path) -> dict:
    return json.loads(read_metadata(path)[1]["Xmp.hostplug.decided"])


def read_rgb(path: Path) -> np.ndarray:
    """Pixels of a PNG or TIFF in RGB order, at their stored depth."""
    if path.suffix == ".tif":
        return tifffile.imread(path)
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]


# --- output formats -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("suffix", "bits", "dtype", "pil_format"),
    [(".tif", None, np.uint16, "TIFF"), (".png", None, np.uint16, "PNG"), (".jpg", None, np.uint8, "JPEG"),
     (".tif", 8, np.uint8, "TIFF"), (".png", 8, np.uint8, "PNG")],
)
def test_output_suffix_picks_the_format_and_bits_picks_the_depth(
    tmp_path: Path, sample_dng: Path, suffix: str, bits: int | None, dtype: type, pil_format: str
) -> None:
    out = tmp_path / f"out{suffix}"
    render(sample_dng, "-o", out, *(["--bits", bits] if bits else []))
    with Image.open(out) as im:
        assert im.format == pil_format and im.size == (900, 600)
        assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"])))
    if suffix != ".jpg":
        data = read_rgb(out)
        assert data.dtype == dtype and data.shape == (600, 900, 3)
        if dtype == np.uint16:
            assert len(np.unique(data)) > 2000


def test_16bit_and_8bit_outputs_show_the_same_picture(tmp_path: Path, sample_dng: Path) -> None:
    render(sample_dng, "-o", tmp_path / "a.png")
    render(sample_dng, "-o", tmp_path / "b.png", "--bits", 8)
    wide, narrow = read_rgb(tmp_path / "a.png") / 65535.0, read_rgb(tmp_path / "b.png") / 255.0
    assert np.abs(wide - narrow).max() <= 0.5 / 255 + 1e-6


def test_tiff_is_uncompressed_unless_deflate_is_asked_and_the_pixels_are_the_same(
    tmp_path: Path, sample_dng: Path
) -> None:
    render(sample_dng, "-o", tmp_path / "plain.tif")
    render(sample_dng, "-o", tmp_path / "small.tif", "--compression", "deflate")
    with tifffile.TiffFile(tmp_path / "plain.tif") as plain, tifffile.TiffFile(tmp_path / "small.tif") as small:
        assert (plain.pages[0].compression, small.pages[0].compression) == (1, 8)  # none, deflate
        np.testing.assert_array_equal(plain.pages[0].asarray(), small.pages[0].asarray())
    assert (tmp_path / "small.tif").stat().st_size < (tmp_path / "plain.tif").stat().st_size
    exif, xmp = read_metadata(tmp_path / "small.tif")
    assert exif["Exif.Image.ImageWidth"] == "900" and "Xmp.hostplug.recipe" in xmp


def test_jpeg_quality_option_changes_the_file_size(tmp_path: Path, sample_dng: Path) -> None:
    render(sample_dng, "-o", tmp_path / "low.jpg", "--quality", 30)
    render(sample_dng, "-o", tmp_path / "high.jpg", "--quality", 98)
    assert (tmp_path / "low.jpg").stat().st_size < 0.6 * (tmp_path / "high.jpg").stat().st_size


@pytest.mark.parametrize(
    ("space", "name"), [("display-p3", "Display P3"), ("adobe-rgb", "Adobe RGB"), ("prophoto", "ProPhoto"),
                        ("AdobeRGB", "Adobe RGB"), ("Display P3", "Display P3"), ("ProPhoto RGB", "ProPhoto")]
)
def test_colour_space_option_embeds_the_matching_profile(
    tmp_path: Path, sample_dng: Path, space: str, name: str
) -> None:
    out = tmp_path / "wide.tif"
    render(sample_dng, "-o", out, "--colour-space", space, "--long-edge", 300)
    assert name in tiff_icc_description(out)
    exif, _ = read_metadata(out)
    assert exif["Exif.Photo.ColorSpace"] == "65535"  # "uncalibrated": the ICC profile says what it is


@pytest.mark.parametrize(("given", "suffix"), [("JPG", ".jpg"), ("Tif", ".tif"), ("PNG", ".png")])
def test_format_is_read_in_any_case_and_as_its_suffix(tmp_path: Path, sample_dng: Path, given: str,
                                                      suffix: str) -> None:
    render(sample_dng, "--out-dir", tmp_path, "--format", given, "--long-edge", 64)
    assert os.listdir(tmp_path) == [f"hostplug_colorchecker{suffix}"]


def test_long_edge_resizes_keeping_the_aspect_ratio(tmp_path: Path, sample_dng: Path) -> None:
    out = tmp_path / "small.png"
    render(sample_dng, "-o", out, "--long-edge", 300)
    assert read_rgb(out).shape == (200, 300, 3)
    exif, _ = read_metadata(out)
    assert (exif["Exif.Photo.PixelXDimension"], exif["Exif.Photo.PixelYDimension"]) == ("300", "200")


def test_out_dir_names_outputs_after_their_inputs_and_is_made_if_new(tmp_path: Path, sample_dng: Path) -> None:
    render(sample_dng, "--out-dir", tmp_path / "new" / "batch", "--format", "png", "--long-edge", 100)
    assert os.listdir(tmp_path / "new" / "batch") == ["hostplug_colorchecker.png"]


def test_output_and_out_dir_together_are_refused_before_any_work(tmp_path: Path, sample_dng: Path) -> None:
    # -o won and --out-dir was made and left empty
    result = hostplug("render", sample_dng, "-o", tmp_path / "x.jpg", "--out-dir", tmp_path / "batch")
    assert result.exit_code == 2 and error_lines(result.stderr) == [
        "hostplug: error: give -o (one output file) or --out-dir (a folder for a batch), not both"]
    assert os.listdir(tmp_path) == []


def test_a_file_given_twice_is_rendered_once_under_its_own_name(tmp_path: Path, sample_dng: Path) -> None:
    # overlapping globs (*.dng IMG_*) name a file twice: it gave x-2.tif twice and never x.tif
    raw = tmp_path / "IMG_1.dng"
    raw.write_bytes(sample_dng.read_bytes())
    result = hostplug("render", raw, tmp_path / ".." / tmp_path.name / raw.name, "--out-dir", tmp_path / "out",
                      "--format", "png", "--long-edge", 100)
    assert result.exit_code == 0, result.stderr
    assert os.listdir(tmp_path / "out") == ["IMG_1.png"]
    assert "given more than once; it is used once" in result.stderr


def test_a_card_folder_with_sidecars_renders_its_raws_under_their_own_names(tmp_path: Path, sample_dng: Path) -> None:
    # `hostplug render *` names each raw's sidecar too: they failed the batch (exit 3), and Adobe's DSC_2.xmp
    # paired with its raw renamed the output DSC_2_dng.png
    for name in ("DSC_1.dng", "DSC_2.dng"):
        (tmp_path / name).write_bytes(sample_dng.read_bytes())
    assert hostplug("edit", tmp_path / "DSC_1.dng", "--exposure", "0.5").exit_code == 0  # DSC_1.dng.xmp
    (tmp_path / "DSC_2.xmp").write_bytes((tmp_path / "DSC_1.dng.xmp").read_bytes())  # Adobe's naming
    card = sorted(tmp_path.iterdir())
    result = hostplug("render", *card, "--out-dir", tmp_path / "out", "--format", "png", "--long-edge", 100)
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["DSC_1.png", "DSC_2.png"]
    assert result.stderr == "hostplug: note: 2 XMP sidecars are left out; each is read with its raw\n"
    assert recipe_of(tmp_path / "out" / "DSC_2.png").exposure == 0.5  # each sidecar still read with its raw
    orphan = hostplug("render", tmp_path / "DSC_1.dng", tmp_path / "DSC_2.xmp", "--out-dir", tmp_path / "again",
                      "--format", "png", "--long-edge", 100)
    assert orphan.exit_code == 0 and f"{tmp_path / 'DSC_2.xmp'}: its raw is not among the files given" in orphan.stderr
    alone = hostplug("render", tmp_path / "DSC_2.xmp", "-o", tmp_path / "x.tif")
    assert alone.exit_code == 3 and error_lines(alone.stderr) == [
        f"hostplug: error: {tmp_path / 'DSC_2.xmp'}: an XMP sidecar, which is read with its raw; name the raw "
        "(DSC_2.*) instead"]


def test_a_raw_whose_name_is_no_utf8_renders_is_edited_and_rerenders(tmp_path: Path, sample_dng: Path) -> None:
    # a name written under another encoding: exiv2 and LibRaw were handed it as UTF-8, and the render died in a
    # traceback (its EXIF was also dropped without a word)
    from engine.output.metadata import exiv2_image

    raw = Path(os.fsdecode(bytes(tmp_path) + b"/DSC\xe9001.dng"))
    raw.write_bytes(sample_dng.read_bytes())
    assert hostplug_process("edit", raw, "--exposure", "0.4").returncode == 0
    out = tmp_path / "out"
    result = hostplug_process("render", raw, "--out-dir", out, "--format", "jpeg", "--long-edge", 100)
    assert result.returncode == 0, result.stderr
    (written,) = out.iterdir()
    with exiv2_image(written) as image:
        exif, xmp = image.read_exif(), image.read_xmp()
    assert exif["Exif.Image.Make"] == "hostplug" and json.loads(xmp["Xmp.hostplug.recipe"])["exposure"] == 0.4
    assert xmp["Xmp.xmpMM.DerivedFrom"] == "DSC\ufffd001.dng"  # XMP is text: the odd byte as U+FFFD
    again = hostplug_process("rerender", written, "--exposure", "0.1")  # found by its SHA-256
    assert again.returncode == 0, again.stderr
    assert len(list(out.iterdir())) == 2


# --- diagnostics and scripting --------------------------------------------------------------------------------

def test_stages_option_writes_an_image_and_parameters_for_every_stage(tmp_path: Path, sample_dng: Path) -> None:
    stages = tmp_path / "stages"
    render(sample_dng, "-o", tmp_path / "out.jpg", "--stages", stages)
    assert len(STAGE_ORDER) == 7
    for index, name in enumerate(STAGE_ORDER, start=1):
        image = cv2.imread(str(stages / f"{index}_{name}.png"))
        assert image is not None and image.shape[2] == 3, name
        info = json.loads((stages / f"{index}_{name}.json").read_text())
        assert info["stage"] == name and "params" in info and info["enabled"] is True
    assert sorted(p.suffix for p in stages.iterdir()) == [".json"] * 7 + [".png"] * 7
    before = (stages / "7_detail.png").read_bytes()
    again = hostplug("render", sample_dng, "-o", tmp_path / "again.jpg", "--stages", stages, "--exposure", "1")
    assert again.exit_code != 0 and "already holds files; pass --overwrite" in again.stderr
    assert (stages / "7_detail.png").read_bytes() == before and not (tmp_path / "again.jpg").exists()


def test_a_stages_folder_that_cannot_be_made_is_one_line_before_any_work(tmp_path: Path, sample_dng: Path) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    stages = tmp_path / "a_file" / "stages"
    result = hostplug("render", sample_dng, "-o", tmp_path / "out.jpg", "--stages", stages)
    assert result.exit_code == 5
    assert error_lines(result.stderr) == [f"hostplug: error: cannot write the stages to {stages}: Not a directory"]
    assert not (tmp_path / "out.jpg").exists()


def test_json_option_prints_a_parseable_report_with_the_output_path(tmp_path: Path, sample_dng: Path) -> None:
    out = tmp_path / "out.jpg"
    result = hostplug("render", sample_dng, "-o", out, "--json", "--exposure", 0.5)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["output"]) == out and out.is_file()
    assert report["recipe"]["exposure"] == 0.5
    assert set(report["timings"]) == set(STAGE_ORDER)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_device_cuda_without_a_gpu_is_one_clear_line(tmp_path: Path, sample_dng: Path) -> None:
    out = tmp_path / "out.tif"
    result = hostplug("render", sample_dng, "-o", out, "--device", "cuda")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert result.exit_code == 2  # a wrong option, as the README lists
    assert len(error_lines(result.stderr)) == 1 and "CUDA" in result.stderr and "--device cpu" in result.stderr
    assert not out.exists()


# --- recipe options -------------------------------------------------------------------------------------------

def test_recipe_options_land_in_the_outputs_recipe(tmp_path: Path, sample_dng: Path) -> None:
    out = tmp_path / "out.jpg"
    render(sample_dng, "-o", out, "--exposure", 0.5, "--style", "natural", "--contrast", 20, "--temperature",
           4800, "--long-edge", 200)
    recipe = recipe_of(out)
    assert (recipe.exposure, recipe.style, recipe.contrast) == (0.5, "natural", 20.0)
    assert (recipe.wb, recipe.temperature) == ("custom", 4800.0)
    assert decided(out)["white_balance"]["temperature"] == pytest.approx(4800, abs=5)


def test_a_recipe_file_is_the_starting_point_and_options_override_it(tmp_path: Path, sample_dng: Path) -> None:
    recipe_file = tmp_path / "look.json"
    recipe_file.write_text(Recipe(exposure=-1.0, saturation=30).to_json())
    out = tmp_path / "out.jpg"
    render(sample_dng, "-o", out, "--recipe", recipe_file, "--exposure", 0.3, "--long-edge", 200)
    recipe = recipe_of(out)
    assert (recipe.exposure, recipe.saturation) == (0.3, 30.0)


def test_disable_switches_a_stage_off(tmp_path: Path, sample_dng: Path) -> None:
    stages = tmp_path / "stages"
    out = tmp_path / "out.jpg"
    render(sample_dng, "-o", out, "--disable", "denoise", "--stages", stages)
    assert recipe_of(out).stage("denoise").enabled is False
    assert json.loads((stages / "2_denoise.json").read_text())["enabled"] is False
    before, after = cv2.imread(str(stages / "1_demosaic.png")), cv2.imread(str(stages / "2_denoise.png"))
    assert np.array_equal(before, after)  # nothing happened in the switched-off stage


def test_use_picks_another_implementation(tmp_path: Path, sample_dng: Path) -> None:
    stages = tmp_path / "stages"
    render(sample_dng, "-o", tmp_path / "out.jpg", "--use", "upsample=bilinear", "--stages", stages)
    assert json.loads((stages / "6_upsample.json").read_text())["implementation"] == "bilinear"
    assert recipe_of(tmp_path / "out.jpg").stage("upsample").implementation == "bilinear"


def test_set_fixes_a_stage_parameter(tmp_path: Path, sample_dng: Path) -> None:
    out = tmp_path / "out.jpg"
    render(sample_dng, "-o", out, "--set", "denoise.strength=0", "--long-edge", 200)
    assert recipe_of(out).stage("denoise").params == {"strength": 0}
    assert decided(out)["denoise"]["strength"] == 0


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--disable", "demosaic"], "cannot be switched off"),
        (["--disable", "nosuchstage"], "unknown stage"),
        (["--use", "upsample=nope"], "no implementation 'nope'"),
        (["--use", "upsample"], "STAGE=IMPLEMENTATION"),
        (["--set", "denoise.nope=1"], "no parameter 'nope'"),
        (["--set", "denoise.strength=abc"], "is not a number"),
        (["--use", "denoise=classical", "--set", "denoise.model=\"mid2\""], "no parameter 'model'"),
        (["--set", "denoise"], "STAGE.PARAM=VALUE"),
        (["--exposure", 99], "exposure 99 is out of range"),
        (["--saturation", -300], "saturation"),
        (["--style", "nosuch"], "unknown style 'nosuch'"),
        (["--style", "natural+vivid"], "a blend is written NAME:WEIGHT,NAME:WEIGHT"),  # a tester's guess at a blend
        # a tester's vivid:0.3 rendered all of vivid, silently
        (["--style", "vivid:0.3"], "blend it with natural (--style natural:0.7,vivid:0.3) or give --style-strength"),
        (["--preset", "nopreset"], "no preset named 'nopreset'"),  # a typo, as an unknown style (it was exit 4)
        # a tester's output recorded denoise 30 over pixels denoised at 20
        (["--denoise", 30, "--set", "denoise.strength=20"], "denoise 30 and the denoise stage's strength"),
        (["--use", "photofinish=classical", "--style", "vivid"], "unknown style 'vivid' for the classical"),  # was 4
        (["--temperature", 500], "temperature"),
        (["--tint", 20], "needs a temperature"),  # the raw's sidecar holds no custom white for it to shift
    ],
)
def test_bad_recipe_options_are_one_clear_line(tmp_path: Path, sample_dng: Path, options: list, words: str) -> None:
    out = tmp_path / "out.tif"
    result = hostplug("render", sample_dng, "-o", out, *options)
    assert result.exit_code == 2  # a wrong option, as the README lists (4 is a bad recipe, sidecar or preset)
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hostplug: error:") and words in lines[0]
    assert not out.exists()


# --- sRGB inputs ----------------------------------------------------------------------------------------------

def write_srgb_image(path: Path) -> None:
    """A small colourful image: a gradient with a few patches, as 8-bit JPEG/PNG or 16-bit TIFF."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    rgb = np.stack([0.15 + 0.6 * x / 64, 0.2 + 0.5 * y / 48, 0.5 - 0.3 * x / 64], axis=-1)
    rgb[8:20, 8:24] = (0.8, 0.3, 0.2)
    if path.suffix == ".tif":
        tifffile.imwrite(path, np.round(rgb * 65535).astype(np.uint16), photometric="rgb")
    else:
        Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(path, quality=95)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_srgb_images_render_and_exposure_brightens_them(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"photo{suffix}"
    write_srgb_image(source)
    render(source, "-o", tmp_path / "base.png")
    render(source, "-o", tmp_path / "bright.png", "--exposure", "+1")
    base, bright = read_rgb(tmp_path / "base.png") / 65535.0, read_rgb(tmp_path / "bright.png") / 65535.0
    assert base.shape == (48, 64, 3)
    assert 0.1 < base.mean() < 0.9 and base.std() > 0.05
    assert bright.mean() > base.mean() + 0.05
    assert recipe_of(tmp_path / "bright.png").exposure == 1.0


def test_a_16_bit_grey_tiff_is_a_picture_not_a_raw(tmp_path: Path) -> None:
    # LibRaw took it for a "flat" Bayer raw: demosaiced as RGGB, brighter, and one of identical rows "truncated"
    grey = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([grey] * 3, axis=-1), photometric="rgb")
    sources = [engine.open(tmp_path / name) for name in ("grey.tif", "rgb.tif")]
    assert [s.kind for s in sources] == ["rgb", "rgb"]
    renders = [engine.render(s).pixels for s in sources]
    assert np.allclose(renders[0], renders[1], atol=1 / 1023)


def test_16_bit_tiffs_of_every_layout_read_as_their_picture_or_are_refused(tmp_path: Path) -> None:
    # planar RGB was read as a 3-pixel-wide strip, white-is-zero grey as its negative, and CMYK went to LibRaw
    # as a Bayer raw: each rendered a wrong picture with exit 0
    rgb = np.random.default_rng(0).integers(0, 65536, (24, 32, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tif", np.ascontiguousarray(rgb.transpose(2, 0, 1)), photometric="rgb",
                     planarconfig="separate")
    tifffile.imwrite(tmp_path / "grey.tif", rgb[..., 0], photometric="minisblack")
    tifffile.imwrite(tmp_path / "white.tif", 65535 - rgb[..., 0], photometric="miniswhite")
    opened = {name: engine.open(tmp_path / f"{name}.tif").sensor for name in ("rgb", "planar", "grey", "white")}
    assert np.array_equal(opened["planar"], opened["rgb"])
    assert np.array_equal(opened["white"], opened["grey"]) and opened["grey"].shape == (24, 32, 3)
    cmyk = np.concatenate([65535 - rgb, np.zeros((24, 32, 1), np.uint16)], axis=2)
    tifffile.imwrite(tmp_path / "cmyk.tif", cmyk, photometric="separated")
    tifffile.imwrite(tmp_path / "float.tif", rgb.astype(np.float32) / 65535, photometric="rgb")
    tifffile.imwrite(tmp_path / "wide.tif", rgb[..., 0].astype(np.uint32) * 65537, photometric="minisblack")
    for name, words in (("cmyk", "a 16-bit CMYK TIFF"), ("float", "a 32-bit floating-point RGB TIFF"),
                        ("wide", "a 32-bit grey TIFF")):
        result = hostplug("render", tmp_path / f"{name}.tif", "-o", tmp_path / f"{name}.png")
        assert result.exit_code == 3 and words in result.stderr, result.stderr
        assert not (tmp_path / f"{name}.png").exists()


def test_a_tiff_whose_samples_have_no_type_is_damaged_not_a_crash(tmp_path: Path) -> None:
    # found by the fuzzer (tests/fuzz/fuzz_open.py): a TIFF of 0-bit samples, for which tifffile gives no dtype,
    # ended in an AttributeError
    import base64
    import zlib

    crash = ("eNrz9NRi4GBgYOBiYGBkYWBkcGaQAPIYwWwGBgEgZmJkZmAG0m1AzAxkg8SBmI0BymYCYkGo+h4gFoWIg7hgWZg54kA1/4GgM8DP"
             "nZdLCmghA6+nh0sQkAZZKcDBxFClwQBWAlPzHz9g+I1dPL+stqV70swFy9dt3XP41MUb95+9/fKbiVNAXA6rpbjdo6pjbOXo4R8W"
             "m5KtwVBUyeDnss4poQkAnl5hDg==")
    (tmp_path / "input.tif").write_bytes(zlib.decompress(base64.b64decode(crash)))
    with pytest.raises(engine.HostplugError, match="no type an image has"):
        engine.open(tmp_path / "input.tif")


def test_a_raw_named_tif_is_still_a_raw(tmp_path: Path) -> None:
    # a TIFF-based raw keeps a preview in its first directory (the Sony's: YCbCr) and its sensor in a SubIFD
    from tests.conftest import SONY, need

    renamed = tmp_path / "DSC2164.tif"
    renamed.symlink_to(need(SONY))
    assert engine.open(renamed).kind == "raw"


# --- outputs that must not replace anything -------------------------------------------------------------------

def test_an_output_never_replaces_its_own_input(tmp_path: Path, sample_dng: Path) -> None:
    raw = tmp_path / "own.dng"
    raw.write_bytes(sample_dng.read_bytes())
    image = tmp_path / "own.png"
    Image.new("RGB", (40, 30), (200, 120, 40)).save(image)
    for source, output, says in ((raw, raw, "own.dng is named as a raw, not a TIFF file"),
                                 (image, image, "the input itself"),
                                 (image, tmp_path / "." / "own.png", "the input itself")):
        before = source.read_bytes()
        result = hostplug("render", source, "-o", output, "--format", "png" if output.suffix == ".png" else "tiff",
                          "--overwrite")
        assert result.exit_code != 0 and says in result.stderr
        assert len(error_lines(result.stderr)) == 1 and source.read_bytes() == before


def test_a_raw_and_jpeg_pair_get_an_output_each(tmp_path: Path, sample_dng: Path) -> None:
    raw, jpeg = tmp_path / "IMG_0001.dng", tmp_path / "IMG_0001.jpg"
    raw.write_bytes(sample_dng.read_bytes())
    Image.new("RGB", (60, 40), (30, 90, 200)).save(jpeg)
    out = tmp_path / "out"
    out.mkdir()
    render(raw, jpeg, "--out-dir", out, "--format", "png", "--long-edge", 60)
    assert sorted(p.name for p in out.iterdir()) == ["IMG_0001_dng.png", "IMG_0001_jpg.png"]
    assert read_rgb(out / "IMG_0001_jpg.png").shape == (40, 60, 3)  # each from its own input
    assert read_rgb(out / "IMG_0001_dng.png").shape == (40, 60, 3)
    assert recipe_of(out / "IMG_0001_dng.png") is not None


def test_a_long_edge_beyond_the_pictures_is_said_not_met(tmp_path: Path, sample_dng: Path) -> None:
    # a tester's delivery to a client's 4000 px went out at 900 px, exit 0, without a word
    result = hostplug("render", sample_dng, "-o", tmp_path / "big.jpg", "--long-edge", "4000")
    assert result.exit_code == 0 and read_rgb(tmp_path / "big.jpg").shape == (600, 900, 3)
    assert (f"hostplug: note: {tmp_path / 'big.jpg'} is 900 x 600, the picture's own size: a long edge of 4000 is "
            "more than it has (hostplug does not enlarge)") in result.stderr
    assert "note:" not in hostplug("render", sample_dng, "-o", tmp_path / "small.jpg", "--long-edge", "400").stderr


def test_outputs_of_same_named_raws_from_two_folders_are_named_alike_in_any_order(tmp_path: Path) -> None:
    # a/IMG_0001.CR2 and b/IMG_0001.CR2 into one --out-dir: the -2 went to whichever came second, so a list made
    # by find (in directory order) named each raw's output differently from one run to the next
    from engine.output.formats import output_names

    sources = [tmp_path / "b" / "IMG_0001.CR2", tmp_path / "a" / "IMG_0001.CR2", tmp_path / "a" / "IMG_0001.JPG"]
    named = dict(zip(sources, output_names(sources, "tiff", tmp_path / "out"), strict=True))
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        again = [sources[i] for i in order]
        assert dict(zip(again, output_names(again, "tiff", tmp_path / "out"), strict=True)) == named
    assert sorted(p.name for p in named.values()) == ["IMG_0001_cr2-2.tif", "IMG_0001_cr2.tif", "IMG_0001_jpg.tif"]
    assert named[sources[1]].name == "IMG_0001_cr2.tif"  # the first by path


@pytest.mark.parametrize(("name", "option", "says"), [
    ("q.tif", ("--quality", "50"), "--quality applies to JPEG outputs only, and this writes TIFF"),
    ("c.png", ("--compression", "deflate"), "--compression applies to TIFF outputs only, and this writes PNG"),
])
def test_an_option_of_another_format_is_refused_not_ignored(tmp_path: Path, sample_dng: Path, name: str,
                                                            option: tuple[str, str], says: str) -> None:
    # it was ignored, and a TIFF's recipe recorded a JPEG quality it never had
    result = hostplug("render", sample_dng, "-o", tmp_path / name, *option)
    assert result.exit_code == 2 and says in result.stderr and not (tmp_path / name).exists()
    render(sample_dng, "--out-dir", tmp_path / "out", "--format", "jpeg", "--quality", "70", "--long-edge", 50)
    render(sample_dng, "-o", tmp_path / "out" / "t.tif", "--long-edge", 50)
    recorded = {name: json.loads(read_metadata(tmp_path / "out" / name)[1]["Xmp.hostplug.output"])
                for name in ("hostplug_colorchecker.jpg", "t.tif")}
    assert recorded["hostplug_colorchecker.jpg"]["quality"] == 70 and "quality" not in recorded["t.tif"]


def test_a_format_that_contradicts_the_output_name_is_refused(tmp_path: Path, sample_dng: Path) -> None:
    out = tmp_path / "picture.tif"
    result = hostplug("render", sample_dng, "-o", out, "--format", "jpeg")
    assert result.exit_code != 0 and not out.exists()
    assert error_lines(result.stderr) == [
        "hostplug: error: picture.tif names a TIFF file but the format asked for is JPEG; name it picture.jpg or "
        "leave out --format"]
    render(sample_dng, "-o", tmp_path / "picture", "--format", "jpeg", "--long-edge", 50)  # no suffix: --format says
    with Image.open(tmp_path / "picture") as im:
        assert im.format == "JPEG"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_while_writing_leaves_no_partial_file(tmp_path: Path, sample_dng: Path,
                                                                 signum: int) -> None:
    # what timeout(1), systemd and docker send, or a closed terminal: the partial output goes, as after Ctrl-C;
    # the writer is made to receive it once its partial file exists, so the test does not race the write
    script = (
        "import os, signal\n"
        "from engine.output import write\n"
        "original = write._write_tiff\n"
        "def interrupted(partial, *args):\n"
        "    partial.write_bytes(b'half a TIFF')\n"
        f"    os.kill(os.getpid(), {int(signum)})\n"
        "    original(partial, *args)\n"
        "write._write_tiff = interrupted\n"
        "from hostplug.cli import main\n"
        "main()\n"
    )
    out = tmp_path / "out.tif"
    result = subprocess.run([sys.executable, "-c", script, "render", "--no-service", str(sample_dng), "-o", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 128 + signum
    name = signal.Signals(signum).name
    assert error_lines(result.stderr) == [f"hostplug: error: terminated ({name}); nothing half-written was left"]
    assert list(tmp_path.iterdir()) == []


def test_json_for_several_files_is_one_object_a_line(tmp_path: Path, sample_dng: Path) -> None:
    other = tmp_path / "other.dng"
    other.write_bytes(sample_dng.read_bytes())
    for command in ("info", "show"):
        lines = hostplug(command, sample_dng, other, "--json").stdout.splitlines()
        assert [json.loads(line)["file" if command == "info" else "input"] for line in lines] == [
            str(sample_dng), str(other)]
        assert json.loads(hostplug(command, other, "--json").stdout)  # one file: one (indented) document


def test_a_wrong_option_is_one_error_line_naming_the_help(sample_dng: Path) -> None:
    for args in (["render", sample_dng, "--wb", "foo"], ["render", sample_dng, "--exposure", "abc"], ["render"],
                 ["nosuchcommand"]):
        result = hostplug(*args)
        assert result.exit_code == 2
        [line] = error_lines(result.stderr)
        assert line.startswith("hostplug: error: ") and "--help)" in line


def test_a_small_output_is_rendered_small_from_the_start(tmp_path: Path, sample_dng: Path) -> None:
    # at most half the picture's size, every stage after demosaicing works at the output's size (what a batch of
    # web JPEGs needs), with the denoiser told the noise that scaling averaged away; it matches the full-size
    # render scaled down at the end
    small = tmp_path / "small.png"
    render(sample_dng, "-o", small, "--long-edge", 300, "--use", "denoise=learned")
    assert decided(small)["denoise"]["noise_origin"].endswith("averaged over 3 x 3 sensor pixels")
    render(sample_dng, "-o", tmp_path / "full.png", "--use", "denoise=learned")
    full = read_rgb(tmp_path / "full.png").astype(np.float32) / 65535
    scaled = cv2.resize(full, (300, 200), interpolation=cv2.INTER_AREA)
    difference = np.abs(read_rgb(small).astype(np.float32) / 65535 - scaled)
    assert read_rgb(small).shape == (200, 300, 3) and float(difference.mean()) < 0.01
    render(sample_dng, "-o", tmp_path / "large.png", "--long-edge", 600, "--use", "denoise=learned")
    assert "averaged" not in decided(tmp_path / "large.png")["denoise"]["noise_origin"]  # past half: full size


def test_a_bare_command_shows_its_help_not_an_error() -> None:
    for args, words in (([], "Render camera raws"), (["integrate"], "Install hostplug into another program")):
        result = hostplug(*args)
        assert "Usage: " in result.output and words in result.output
        assert "hostplug: error" not in result.output + result.stderr


def test_commands_run_in_process_on_any_thread_and_as_click_allows() -> None:
    import threading

    from hostplug.cli import main

    codes: list[object] = []

    def run() -> None:
        try:
            main(["presets"])
        except SystemExit as e:
            codes.append(e.code)

    worker = threading.Thread(target=run)  # only the main thread may set a signal handler: others keep theirs
    worker.start()
    worker.join()
    assert codes == [0]
    assert main(["presets"], standalone_mode=False) is None  # click's own contract for a caller that asks


def test_a_batch_never_writes_two_inputs_to_one_file(tmp_path: Path) -> None:
    inputs = []
    for folder, colour in (("a", (200, 30, 30)), ("b", (30, 200, 30))):
        (tmp_path / folder).mkdir()
        inputs.append(tmp_path / folder / "IMG_1.jpg")
        Image.new("RGB", (40, 30), colour).save(inputs[-1])
    pair = tmp_path / "a" / "IMG_1.png"
    Image.new("RGB", (40, 30), (30, 30, 200)).save(pair)
    out = tmp_path / "out"
    out.mkdir()
    render(*inputs, pair, "--out-dir", out, "--format", "png", "--overwrite", "--stages", tmp_path / "stages")
    written = {p.name: read_rgb(p)[15, 20] for p in out.iterdir()}
    assert sorted(written) == ["IMG_1_jpg-2.png", "IMG_1_jpg.png", "IMG_1_png.png"]
    assert len({tuple(int(v) // 4096 for v in colour) for colour in written.values()}) == 3  # each its own input
    assert sorted(p.name for p in (tmp_path / "stages").iterdir()) == ["IMG_1_jpg", "IMG_1_jpg-2", "IMG_1_png"]


@pytest.mark.parametrize(("output", "options", "words"), [
    ("x.jpg", ["--bits", "16"], "JPEG holds only 8 bits per channel"),
    ("f.tif", ["--format", "jpeg"], "f.tif names a TIFF file but the format asked for is JPEG"),
    ("x.bmp", [], "cannot tell the output format from 'x.bmp'"),
])
def test_output_options_that_cannot_go_together_are_a_wrong_option(
        tmp_path: Path, sample_dng: Path, output: str, options: list[str], words: str) -> None:
    result = hostplug("render", sample_dng, "-o", tmp_path / output, *options)
    assert result.exit_code == 2  # a wrong option, not an output that cannot be written (5)
    (line,) = error_lines(result.stderr)
    assert words in line and list(tmp_path.iterdir()) == []


def test_a_recipe_file_that_does_not_exist_is_a_missing_file(tmp_path: Path, sample_dng: Path) -> None:
    for name in ("nosuch.json", "nosuch.tif"):  # a recipe file, or the output whose recipe to take
        result = hostplug("render", sample_dng, "-o", tmp_path / "out.jpg", "--recipe", tmp_path / name)
        assert result.exit_code == 2  # a missing file (4 is a recipe that is there but bad)
        assert error_lines(result.stderr) == [f"hostplug: error: {tmp_path / name}: no such recipe file"]
    assert list(tmp_path.iterdir()) == []


def test_the_exit_status_says_why_a_render_failed(tmp_path: Path) -> None:
    missing = hostplug("render", tmp_path / "nothere.dng", "-o", tmp_path / "a.tif")
    damaged = tmp_path / "damaged.dng"
    damaged.write_bytes(b"II*\0" + bytes(100))
    broken = hostplug("render", damaged, "-o", tmp_path / "b.tif")
    both = hostplug("render", tmp_path / "nothere.dng", damaged, "--out-dir", tmp_path)
    assert (missing.exit_code, broken.exit_code, both.exit_code) == (2, 3, 1)  # two reasons: 1


def test_a_deleted_current_folder_is_one_line_not_a_render_under_root(tmp_path: Path, sample_dng: Path) -> None:
    # the render service, given no folder, wrote "out.png" to /; in-process it was a traceback
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f"import os, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); from hostplug.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", script, "render", str(sample_dng), "-o", "out.png"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and error_lines(done.stderr) == [
        "hostplug: error: the current folder no longer exists (deleted or moved away); cd into a folder that does"]
    assert not Path("/out.png").exists()


def test_stage_images_of_a_raw_whose_name_is_no_utf8_are_written(tmp_path: Path, sample_dng: Path) -> None:
    # OpenCV's writer took the name as text and crashed the process (and a render service with it): SIGSEGV
    name = os.fsdecode(b"caf\xe9.dng")
    raw = tmp_path / name
    raw.write_bytes(sample_dng.read_bytes())
    result = hostplug_process("render", raw, "-o", tmp_path / "out.tif", "--long-edge", "100",
                              "--stages", tmp_path / "stages", "--no-service")
    assert result.returncode == 0, result.stderr
    images = sorted(p.name for p in (tmp_path / "stages").glob("*.png"))
    assert len(images) == len(STAGE_ORDER) and all(cv2.imread(str(tmp_path / "stages" / n)) is not None
                                                   for n in images)
    assert not list((tmp_path / "stages").glob(".*"))  # no temporary left


def test_an_interrupt_that_numba_wrapped_twice_is_still_an_interrupt() -> None:
    from hostplug.cli import _signal_behind

    try:
        try:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as e:
                raise SystemError("_numba_unpickle returned a result with an exception set") from e
        except SystemError as e:
            raise SystemError("CPUDispatcher(_bgu_accumulate) returned a result with an exception set") from e
    except SystemError as outer:
        assert isinstance(_signal_behind(outer), KeyboardInterrupt)
    assert _signal_behind(SystemError("a real one")) is None


def test_edit_of_several_files_ends_with_how_many_failed(tmp_path: Path, sample_dng: Path) -> None:
    good = tmp_path / "good.dng"
    good.write_bytes(sample_dng.read_bytes())
    result = hostplug("edit", good, tmp_path / "missing.dng", "--exposure", "0.5")
    assert result.exit_code == 2
    assert error_lines(result.stderr)[-1] == "hostplug: error: 1 of 2 files failed"


def test_rerender_takes_several_outputs_as_render_and_edit_do(tmp_path: Path, sample_dng: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        raw = tmp_path / f"{name}.dng"
        raw.write_bytes(sample_dng.read_bytes())
        outputs.append(tmp_path / f"{name}.jpg")
        assert hostplug("render", raw, "-o", outputs[-1], "--long-edge", 200, "--no-service").exit_code == 0
    result = hostplug("rerender", *outputs, "--preset", "monochrome")
    assert result.exit_code == 0, result.stderr
    for output in outputs:
        pixels = cv2.imread(str(output.with_name(output.stem + "_rerender.jpg"))).astype(int)
        assert np.abs(pixels - pixels[..., :1]).max() <= 2  # black and white, each from its own raw
    one = hostplug("rerender", *outputs, "-o", tmp_path / "x.jpg")
    assert one.exit_code == 2 and "-o/--output names one new file; 2 outputs were given" in one.stderr


def test_out_of_memory_is_one_line(tmp_path: Path, sample_dng: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # under a memory limit (ulimit -v) numpy's MemoryError was a traceback, and safetensors' ENOMEM reading the
    # denoiser's weights was "weights cannot be read", exit 6: reinstall, the wrong advice
    from engine import models

    def no_memory(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Cannot allocate memory (os error 12)")

    monkeypatch.setattr("safetensors.numpy.load_file", no_memory)
    monkeypatch.setattr("safetensors.torch.load_file", no_memory)
    monkeypatch.setattr(models, "_NETWORKS", {})
    result = hostplug("render", sample_dng, "-o", tmp_path / "x.tif", "--use", "denoise=learned", "--no-service")
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [error_lines(result.stderr)[0]]
    assert "out of memory" in result.stderr and not (tmp_path / "x.tif").exists()


def test_a_failed_render_takes_its_stage_images_out_of_a_folder_that_was_there(
        tmp_path: Path, sample_dng: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a full disk at the fourth stage left the first three stages' images beside the folder's own files
    from engine.errors import OutputError
    from engine.stages.colour_matrix import ColourMatrix

    folder = tmp_path / "stages"

    def disk_full(*args: object) -> None:
        (folder / "saved meanwhile.png").write_text("the photographer's")  # not a stage image: it stays
        raise OutputError("cannot write 4_colour.png: No space left on device")

    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    monkeypatch.setattr(ColourMatrix, "process", disk_full)
    result = hostplug("render", sample_dng, "-o", tmp_path / "x.jpg", "--stages", folder, "--no-service",
                      "--overwrite")  # (a folder that holds files takes stage images only with --overwrite)
    assert result.exit_code == 5 and "4_colour.png: No space left" in result.stderr, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "saved meanwhile.png"]


@pytest.mark.parametrize("options", [("--format", "jpeg", "--bits", "16"), ("--long-edge", "100")])
def test_a_refused_batch_leaves_no_output_folder_behind(tmp_path: Path, sample_dng: Path, options: tuple) -> None:
    # a tester's --out-dir was made before the format was checked, and stayed, empty, after the refusal
    inputs = [sample_dng] if options[0] == "--format" else [tmp_path / "missing.dng"]
    result = hostplug("render", *inputs, "--out-dir", tmp_path / "new" / "out", *options, "--no-service")
    assert result.exit_code == 2 and not (tmp_path / "new").exists()  # nor the folder made for it (a reviewer's)


def test_an_option_without_its_value_points_to_the_command_s_help(sample_dng: Path) -> None:
    # click gives that error no command: the hint named `hostplug --help`, where other errors name the command's
    result = hostplug("render", sample_dng, "-o")
    assert result.exit_code == 2 and error_lines(result.stderr) == [
        "hostplug: error: Option '-o' requires an argument. (see: hostplug render --help)"]


def test_stage_and_implementation_names_are_read_in_any_case(tmp_path: Path, sample_dng: Path) -> None:
    # styles, presets and --wb are; a tester's --use DENOISE=classical was an unknown stage
    out = tmp_path / "out.jpg"
    result = hostplug("render", sample_dng, "-o", out, "--long-edge", 64, "--no-service", "--use", "DETAIL=Classical",
                      "--set", "Detail.Amount=10", "--disable", "Denoise ", "--use", "UPSAMPLE=bilinear", "--json")
    assert result.exit_code == 0, result.stderr
    stages = json.loads(result.stdout)["recipe"]["stages"]
    assert stages["denoise"]["enabled"] is False and stages["upsample"]["implementation"] == "bilinear"
    assert stages["detail"]["params"]["amount"] == 10


def test_render_json_names_the_source_s_hash_as_the_output_records_it(tmp_path: Path, sample_dng: Path) -> None:
    # what a caller keeps to know the raw again (the GIMP plug-in) without reading it a second time
    import hashlib

    result = hostplug("render", sample_dng, "-o", tmp_path / "x.jpg", "--long-edge", 64, "--no-service", "--json")
    assert json.loads(result.stdout)["source_sha256"] == hashlib.sha256(sample_dng.read_bytes()).hexdigest()
    # and the temperature and tint the white balance came to, where a custom one starts (the GIMP dialog)
    custom = hostplug("render", sample_dng, "-o", tmp_path / "y.jpg", "--long-edge", 64, "--no-service", "--json",
                      "--temperature", "4000", "--tint", "5")
    assert json.loads(custom.stdout)["white_balance"] == {"temperature": 4000.0, "tint": 5.0}


def test_command_line_errors_leave_out_the_hint_for_library_users(tmp_path: Path, sample_dng: Path) -> None:
    # a tester: "(in Python: OutputOptions(overwrite=True))" is noise at the command line; a script keeps it
    import engine

    taken = tmp_path / "taken.tif"
    taken.write_bytes(b"someone's file")
    result = hostplug("render", sample_dng, "-o", taken, "--no-service")
    assert error_lines(result.stderr) == [f"hostplug: error: {taken} exists; pass --overwrite to replace it"]
    with pytest.raises(engine.OutputError, match=r"\(in Python: OutputOptions\(overwrite=True\)\)$"):
        engine.write_image(engine.render(engine.open(sample_dng), preview=64), taken)


def test_a_replaced_output_keeps_its_permissions(tmp_path: Path) -> None:
    """A tester's: a client's file made private (0600) came back 0644, readable by everyone, after --overwrite
    (and a re-render over it): an output put in the place of a file takes that file's permissions."""
    from tests.conftest import SAMPLE_DNG

    out = tmp_path / "private.jpg"
    assert hostplug("render", SAMPLE_DNG, "-o", out, "--long-edge", "64").exit_code == 0
    out.chmod(0o600)
    assert hostplug("render", SAMPLE_DNG, "-o", out, "--long-edge", "64", "--exposure", "0.5",
                    "--overwrite").exit_code == 0
    assert out.stat().st_mode & 0o777 == 0o600
    out.chmod(0o640)
    assert hostplug("rerender", out, "-o", out, "--overwrite").exit_code == 0
    assert out.stat().st_mode & 0o777 == 0o640


def test_the_output_s_modification_date_is_when_it_was_written(tmp_path: Path) -> None:
    """A tester's: Exif's DateTime (the file's modification) was the capture time, beside Software: hostplug."""
    import datetime

    from tests.conftest import SAMPLE_DNG

    before = datetime.datetime.now().replace(microsecond=0)
    for suffix in (".jpg", ".tif"):
        out = tmp_path / f"dated{suffix}"
        assert hostplug("render", SAMPLE_DNG, "-o", out, "--long-edge", "64").exit_code == 0
        exif, _ = read_metadata(out)
        written = datetime.datetime.strptime(exif["Exif.Image.DateTime"], "%Y:%m:%d %H:%M:%S")
        assert before <= written <= datetime.datetime.now()


def test_a_sidecar_named_output_is_told_the_name_it_wants() -> None:
    from engine.errors import OutputOptionError
    from engine.output.formats import OutputOptions, resolve_format

    with pytest.raises(OutputOptionError, match="name it w.jpg$"):  # not "w.jpg.jpg" (a tester's)
        resolve_format(Path("w.jpg.xmp"), OutputOptions(format="jpeg"))
    with pytest.raises(OutputOptionError, match="name it IMG_1.jpg$"):
        resolve_format(Path("IMG_1.CR2"), OutputOptions(format="jpeg"))


def test_a_rerender_to_another_format_s_suffix_says_the_suffix_without_python_names(tmp_path: Path) -> None:
    from tests.conftest import SAMPLE_DNG

    out = tmp_path / "r.tif"
    assert hostplug("render", SAMPLE_DNG, "-o", out, "--long-edge", "64").exit_code == 0
    result = hostplug("rerender", out, "-o", tmp_path / "r.jpg")
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [f"hostplug: error: {tmp_path / 'r.jpg'}: r.tif is TIFF; give the new file "
                                          "its suffix, .tif"]


def test_json_gives_every_input_a_record_failed_ones_too(tmp_path: Path) -> None:
    """A tester's: with --json only the files that rendered printed a record; a script learned of a failure only
    by parsing stderr's text. Every record is one line, for one input as for several."""
    from tests.conftest import SAMPLE_DNG

    broken = tmp_path / "broken.dng"
    broken.write_bytes(b"II*\x00" + b"\x00" * 64)
    result = hostplug("render", SAMPLE_DNG, broken, "--out-dir", tmp_path / "out", "--long-edge", "64", "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 3 and [r["input"] for r in records] == [str(SAMPLE_DNG), str(broken)]
    assert records[1]["exit_code"] == 3 and records[1]["error"].startswith(str(broken)) and "output" not in records[1]
    shown = hostplug("info", SAMPLE_DNG, "--json")
    assert len(shown.stdout.splitlines()) == 1 and json.loads(shown.stdout)["input"] == str(SAMPLE_DNG)


def test_a_raw_dated_by_datetime_alone_keeps_its_capture_time_and_zone(tmp_path: Path) -> None:
    """A reviewer's: once DateTime became the write time, a raw that dates itself by DateTime alone (its zone in
    OffsetTime) gave outputs with no capture time; read back, an output took none."""
    import shutil

    import pyexiv2

    from tests.conftest import SAMPLE_DNG

    raw = Path(shutil.copy(SAMPLE_DNG, tmp_path / "dated.dng"))
    with pyexiv2.Image(str(raw)) as image:
        image.modify_exif({"Exif.Image.DateTime": "2019:03:04 05:06:07", "Exif.Photo.OffsetTime": "+01:00"})
    out = tmp_path / "dated.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "64").exit_code == 0
    exif, _ = read_metadata(out)
    assert (exif["Exif.Photo.DateTimeOriginal"], exif["Exif.Photo.OffsetTimeOriginal"]) == ("2019:03:04 05:06:07",
                                                                                           "+01:00")
    assert exif["Exif.Image.DateTime"] != "2019:03:04 05:06:07"
    taken = engine.open(out).camera.timestamp
    assert taken is not None and taken.isoformat() == "2019-03-04T05:06:07"


def test_an_output_s_or_a_later_change_s_datetime_is_no_capture_time(tmp_path: Path) -> None:
    """A re-tester's: rendering a hostplug output made its write time the new file's capture time; and a DateTime
    of a later change (months after the capture) gave its zone to the capture time."""
    import shutil

    import pyexiv2

    from tests.conftest import SAMPLE_DNG

    first, second = tmp_path / "nodate.jpg", tmp_path / "nodate2.jpg"
    assert hostplug("render", SAMPLE_DNG, "-o", first, "--long-edge", "64").exit_code == 0
    assert hostplug("render", first, "-o", second, "--long-edge", "64").exit_code == 0
    assert "Exif.Photo.DateTimeOriginal" not in read_metadata(second)[0]
    raw = Path(shutil.copy(SAMPLE_DNG, tmp_path / "converted.dng"))
    with pyexiv2.Image(str(raw)) as image:
        image.modify_exif({"Exif.Photo.DateTimeOriginal": "2026:01:10 10:00:00", "Exif.Image.DateTime":
                           "2026:08:01 12:00:00", "Exif.Photo.OffsetTime": "+09:00"})
    out = tmp_path / "converted.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "64").exit_code == 0
    exif = read_metadata(out)[0]
    assert exif["Exif.Photo.DateTimeOriginal"] == "2026:01:10 10:00:00" and "Exif.Photo.OffsetTimeOriginal" not in exif


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file another owner and group needs root")
def test_a_replaced_output_and_sidecar_keep_their_group_and_owner(tmp_path: Path) -> None:
    """A re-tester's: a 0640 file of a studio group came back root:root, so colleagues lost access."""
    import shutil

    from tests.conftest import SAMPLE_DNG

    out = tmp_path / "shared.jpg"
    out.write_text("x")
    os.chown(out, 65534, 65534)
    out.chmod(0o640)
    assert hostplug("render", SAMPLE_DNG, "-o", out, "--long-edge", "64", "--overwrite").exit_code == 0
    assert (out.stat().st_uid, out.stat().st_gid, out.stat().st_mode & 0o777) == (65534, 65534, 0o640)
    raw = Path(shutil.copy(SAMPLE_DNG, tmp_path / "r.dng"))
    assert hostplug("edit", raw, "--exposure", "0.1").exit_code == 0
    sidecar = tmp_path / "r.dng.xmp"
    os.chown(sidecar, 65534, 65534)
    sidecar.chmod(0o600)
    assert hostplug("edit", raw, "--exposure", "0.2").exit_code == 0
    assert (sidecar.stat().st_uid, sidecar.stat().st_gid, sidecar.stat().st_mode & 0o777) == (65534, 65534, 0o600)
