"""An image input (JPEG, PNG, TIFF) is already a camera's rendering: the default look gives it back at about its
own exposure, where it was lifted as a raw is (about 1.5 EV too bright) before recipe version 13."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

import engine
from engine.camera_look import IMAGE_Y_CAP, CameraLook, process, unprocess, unprocess_image

SAMPLE = Path(__file__).resolve().parents[1] / "engine" / "samples" / "hostplug_colorchecker.dng"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def test_unprocess_inverts_the_typical_camera_rendering() -> None:
    linear = np.random.default_rng(0).uniform(0.0, 0.3, (8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(unprocess(process(linear, CameraLook()), CameraLook()), linear, atol=2e-3)


def test_a_render_reads_the_channel_curve_from_a_table_within_1e_4_of_it() -> None:
    pixels = np.random.default_rng(1).uniform(0.0, 1.0, (64, 64, 3)).astype(np.float32)
    pixels[0], pixels[1] = 0.0, 1.0  # black and white ends
    np.testing.assert_allclose(unprocess_image(pixels), unprocess(pixels, cap=IMAGE_Y_CAP), atol=1e-4)


def test_a_rendered_jpeg_comes_back_at_its_own_exposure_and_old_recipes_keep_theirs(tmp_path: Path) -> None:
    jpeg = tmp_path / "rendered.jpg"
    engine.render_file(SAMPLE, jpeg)  # a finished picture, as a camera or an editor writes one
    again, before = tmp_path / "again.png", tmp_path / "v12.png"
    options = engine.OutputOptions(bits=8)
    engine.render_file(jpeg, again, options=options)
    given = np.asarray(Image.open(jpeg), dtype=np.float64)
    back = np.asarray(Image.open(again), dtype=np.float64)
    assert abs(back.mean() - given.mean()) < 4 and _psnr(back, given) > 33  # its exposure kept as shot
    old = engine.Recipe.from_dict({"version": 12})  # what such a recipe meant: sRGB decoded, then lifted as a raw
    engine.render_file(jpeg, before, old, options=options)
    lifted = np.asarray(Image.open(before), dtype=np.float64)
    assert lifted.mean() > given.mean() + 30


def test_a_sidecar_written_before_version_13_renders_as_it_did(tmp_path: Path) -> None:
    # sidecar layout 10 (written by recipe versions 10 to 12) was read as version 13: an edited JPEG changed by 82
    # of 255; it renders as version 12 did, a raw too (not as version 10, before the gamut compression)
    jpeg = tmp_path / "edited.jpg"
    engine.render_file(SAMPLE, jpeg)
    raw = tmp_path / "edited.dng"
    raw.write_bytes(SAMPLE.read_bytes())
    options = engine.OutputOptions(bits=16)
    for source in (jpeg, raw):
        source.with_name(source.name + ".xmp").write_text(
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:hostplug="http://ns.hostplug.org/xmp/1.0/" '
            'hostplug:schemaVersion="10" hostplug:exposure="0.3"/></rdf:RDF></x:xmpmeta>')
        engine.render_file(source, tmp_path / "sidecar.tif", options=options)
        engine.render_file(source, tmp_path / "v12.tif", engine.Recipe.from_dict({"version": 12, "exposure": 0.3}),
                           options=options)
        sidecar, v12 = (tifffile.imread(tmp_path / f"{n}.tif") for n in ("sidecar", "v12"))
        assert np.array_equal(sidecar, v12), source.name
        for name in ("sidecar.tif", "v12.tif"):
            (tmp_path / name).unlink()


def test_an_images_white_stays_neutral_under_another_white_balance(tmp_path: Path) -> None:
    # a JPEG's white (255) is clipped as a raw's sensor white is: balanced for 4000 K it turned cyan (175, 232, 251)
    white = tmp_path / "white.png"
    Image.fromarray(np.full((60, 90, 3), 255, np.uint8)).save(white)
    options = engine.OutputOptions(bits=8)
    engine.render_file(white, tmp_path / "now.png", engine.Recipe().replace(temperature=4000.0), options=options)
    now = np.asarray(Image.open(tmp_path / "now.png"), dtype=np.int32)[30, 45]
    assert now.max() - now.min() <= 6 and now.min() > 200, now
    old = engine.Recipe.from_dict({"version": 12, "wb": "custom", "temperature": 4000.0})
    engine.render_file(white, tmp_path / "v12.png", old, options=options)
    before = np.asarray(Image.open(tmp_path / "v12.png"), dtype=np.int32)[30, 45]
    assert before.max() - before.min() > 12, before  # no ceiling then: its white tinted


def test_info_names_an_image_s_format_by_its_content_not_its_suffix(tmp_path: Path) -> None:
    """A tester's: a PNG named .jpg was reported as "JPG" (it renders as what it is)."""
    png_named_jpeg = tmp_path / "fake.jpg"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(png_named_jpeg, format="PNG")
    assert engine.open(png_named_jpeg).format == "PNG"


def test_a_jpeg_or_png_named_tif_is_read_as_what_it_is(tmp_path: Path) -> None:
    # a re-tester's: "the image data cannot be read (not a TIFF file...)", exit 3, for a sound JPEG named .tif
    for kind in ("JPEG", "PNG"):
        named = tmp_path / f"{kind.lower()}.tif"
        Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(named, format=kind)
        source = engine.open(named)
        assert source.format == kind and abs(float(source.sensor.mean()) - 128 / 255) < 0.01
