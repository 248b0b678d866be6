"""The edit -> render -> rerender cycle on the command line: sidecars drive renders, outputs can be re-rendered."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pyexiv2
import pytest
from click.testing import CliRunner, Result

from engine import Recipe
from engine.output.metadata import register_namespace
from engine.xmp.sidecar import read_sidecar
from hostplug.cli import main
from tests.conftest import error_lines, read_metadata

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = REPO / "engine" / "samples" / "hostplug_colorchecker.dng"
DARKTABLE_XMP = REPO.parent / "shared" / "sidecars" / "darktable-4.2.1-colorchart.dng.xmp"
MALFORMED = sorted((DATA / "malformed").glob("*.xmp"))


def hostplug(*args: object) -> Result:
    """Run ``hostplug ARGS`` in-process."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def xmp_of(path: Path) -> dict[str, object]:
    register_namespace()
    with pyexiv2.Image(str(path)) as image:
        return image.read_xmp()


def raw_xmp_of(path: Path) -> str:
    with pyexiv2.Image(str(path)) as image:
        return image.read_raw_xmp()


def pixels(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """A copy of the bundled sample raw in its own folder."""
    path = tmp_path / "shots" / "IMG_0001.dng"
    path.parent.mkdir()
    shutil.copy(SAMPLE, path)
    return path


@pytest.fixture
def user_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def test_edit_stores_the_recipe_without_rendering_and_merges(raw: Path, user_presets: None) -> None:
    result = hostplug("edit", raw, "--exposure", "0.3", "--preset", "punchy")
    assert result.exit_code == 0, result.output
    assert "IMG_0001.dng.xmp" in result.output
    assert hostplug("edit", raw, "--temperature", "5200", "--preset", "soft-contrast").exit_code == 0
    recipe = read_sidecar(raw).recipe
    assert (recipe.exposure, recipe.temperature, recipe.wb) == (0.3, 5200.0, "custom")
    assert (recipe.contrast, recipe.vibrance) == (-25.0, 25.0)  # the later preset wins where both set a value
    assert sorted(p.name for p in raw.parent.iterdir() if not p.name.startswith(".")) == [raw.name, raw.name + ".xmp"]


@pytest.mark.parametrize("options", [["--exposure", "9"], ["--style", "Sepia"], ["--preset", "sepia"]])
def test_edit_refuses_a_bad_value_and_keeps_the_sidecar(raw: Path, options: list[str], user_presets: None) -> None:
    assert hostplug("edit", raw, "--exposure", "1").exit_code == 0
    before = (raw.parent / "IMG_0001.dng.xmp").read_bytes()
    result = hostplug("edit", raw, *options)
    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("hostplug: error: ")
    assert (raw.parent / "IMG_0001.dng.xmp").read_bytes() == before


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header that claims a size (no pixel data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


@pytest.mark.parametrize(("name", "content"), [
    ("IMG_0002.dng", b""), ("IMG_0002.dng", b"notes for the shoot\n" * 10),
    ("IMG_0002.dng", b"II*\x00" + b"\x00" * 40), ("IMG_0002.png", _png_claiming(15000, 15000)),
])
def test_edit_refuses_a_file_that_is_no_image_and_writes_no_sidecar(tmp_path: Path, name: str,
                                                                    content: bytes) -> None:
    fake = tmp_path / name
    fake.write_bytes(content)
    result = hostplug("edit", fake, "--exposure", "1")
    assert result.exit_code == 3  # damaged or unsupported, as a render of it says (an empty file was 2 here)
    assert hostplug("render", fake, "-o", tmp_path / "out.tif").exit_code == 3
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("hostplug: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("command", ["edit", "render", "info"])
def test_a_jpeg_named_like_a_raw_is_named_for_what_it_is(tmp_path: Path, command: str) -> None:
    fake = tmp_path / "IMG_0002.ARW"
    cv2.imwrite(str(tmp_path / "camera.jpg"), np.full((16, 24, 3), 90, np.uint8))
    (tmp_path / "camera.jpg").rename(fake)
    result = hostplug(command, fake, *{"edit": ["--exposure", "1"], "render": ["-o", tmp_path / "out.tif"]}.get(
        command, []))
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [
        f"hostplug: error: {fake}: a JPEG image named like a raw (.ARW); hostplug reads an image by its suffix: "
        "rename it IMG_0002.jpg to render it"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [fake.name]


def test_show_prints_recipe_catalogue_and_duplicates(raw: Path) -> None:
    if not DARKTABLE_XMP.is_file():
        pytest.skip(f"shared test data not present: {DARKTABLE_XMP}")
    shutil.copyfile(DARKTABLE_XMP, raw.parent / "IMG_0001.dng.xmp")
    (raw.parent / "IMG_0001_01.dng.xmp").write_bytes(DARKTABLE_XMP.read_bytes())
    text = hostplug("show", raw)
    assert text.exit_code == 0
    assert "recipe:     none stored" in text.output and "rating:     4" in text.output
    assert "keywords:   client-a, studio" in text.output and "IMG_0001_01.dng.xmp" in text.output
    hostplug("edit", raw, "--shadows", "20")
    data = json.loads(hostplug("show", raw, "--json").output)
    assert data["recipe"]["shadows"] == 20.0 and data["changed"] == {"shadows": 20.0}
    assert (data["rating"], data["labels"], data["keywords"]) == (4, ["Red"], ["client-a", "studio"])
    nothing = hostplug("show", raw.with_name("IMG_0002.dng"))
    assert nothing.exit_code != 0 and "no such file" in nothing.stderr
    (raw.parent / "IMG_0001.dng.xmp").unlink()  # darktable's version 0 deleted: its duplicate was not mentioned
    alone = hostplug("show", raw)
    assert "no sidecar" in alone.output and "IMG_0001_01.dng.xmp are not read" in alone.output


def test_show_reads_adobe_hints(raw: Path) -> None:
    shutil.copy(DATA / "adobe-camera-raw.xmp", raw.with_suffix(".xmp"))
    data = json.loads(hostplug("show", raw, "--json").output)
    assert data["recipe"] is None and data["hints"]["temperature"] == 5600.0 and data["adobe"]["Tint"] == "+12"


def test_presets_command_lists_files_and_settings(user_presets: None) -> None:
    listed = {p["name"]: p for p in json.loads(hostplug("presets", "--json").output)}
    assert listed["monochrome"]["settings"] == {"saturation": -100.0, "vibrance": 0.0}
    assert listed["natural"]["kind"] == "style" and Path(listed["natural"]["file"]).is_file()
    text = hostplug("presets").output
    assert "warm-5200" in text and "temperature 5200" in text


def test_render_uses_the_sidecar_and_carries_catalogue_data(raw: Path, user_presets: None) -> None:
    if DARKTABLE_XMP.is_file():
        shutil.copyfile(DARKTABLE_XMP, raw.parent / "IMG_0001.dng.xmp")
    assert hostplug("edit", raw, "--exposure", "0.5", "--preset", "monochrome").exit_code == 0
    out = raw.parent / "out.png"
    result = hostplug("render", raw, "-o", out, "--contrast", "10")
    assert result.exit_code == 0, result.stderr
    xmp = xmp_of(out)
    recipe = Recipe.from_json(xmp["Xmp.hostplug.recipe"])
    assert (recipe.exposure, recipe.saturation, recipe.contrast) == (0.5, -100.0, 10.0)  # command line on top
    assert isinstance(json.loads(xmp["Xmp.hostplug.models"]), dict)  # {} while every stage is classical
    assert xmp["Xmp.hostplug.engineVersion"] and len(xmp["Xmp.hostplug.sourceSHA256"]) == 64
    assert "operators" in json.loads(xmp["Xmp.hostplug.decided"])["photofinish"]
    if DARKTABLE_XMP.is_file():
        assert (xmp["Xmp.xmp.Rating"], xmp["Xmp.xmp.Label"], xmp["Xmp.dc.subject"]) == ("4", "Red",
                                                                                     ["client-a", "studio"])
    grey = pixels(out).astype(np.float64)
    assert np.abs(grey[..., 0] - grey[..., 2]).mean() < 0.05 * 65535  # nearly grey: the sidecar's monochrome


_CREDITS_XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <dc:creator><rdf:Seq><rdf:li>Ana Lima</rdf:li></rdf:Seq></dc:creator>
  <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">(c) 2026 Ana Lima, all rights reserved</rdf:li></rdf:Alt></dc:rights>
  <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Harbour at dawn</rdf:li></rdf:Alt></dc:title>
 </rdf:Description></rdf:RDF></x:xmpmeta>"""


def test_creator_rights_and_title_of_the_sidecar_reach_every_output_and_rerender(raw: Path) -> None:
    # a photographer's copyright and credit line, written by Lightroom or darktable, were dropped from outputs
    (raw.parent / "IMG_0001.dng.xmp").write_text(_CREDITS_XMP)
    out = raw.parent / "out.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "100").exit_code == 0
    assert hostplug("rerender", out, "--exposure", "0.3").exit_code == 0
    for made in (out, raw.parent / "out_rerender.jpg"):
        xmp = xmp_of(made)
        assert xmp["Xmp.dc.creator"] == ["Ana Lima"]
        assert xmp["Xmp.dc.rights"] == {'lang="x-default"': "(c) 2026 Ana Lima, all rights reserved"}
        assert xmp["Xmp.dc.title"] == {'lang="x-default"': "Harbour at dawn"}


def test_the_sidecars_creator_rights_and_caption_replace_the_cameras_exif_ones(raw: Path) -> None:
    """A tester's delivered file named two owners: the camera's EXIF Artist and Copyright (and its "OLYMPUS
    DIGITAL CAMERA" caption), which most tools read, beside the sidecar's creator and rights in XMP."""
    import pyexiv2

    with pyexiv2.Image(str(raw)) as image:
        image.modify_exif({"Exif.Image.Artist": "Old Camera Owner", "Exif.Image.Copyright": "(c) 2010 Old Owner",
                           "Exif.Image.ImageDescription": "OLYMPUS DIGITAL CAMERA"})
    plain = raw.parent / "plain.jpg"
    assert hostplug("render", raw, "-o", plain, "--long-edge", "100").exit_code == 0
    assert read_metadata(plain)[0]["Exif.Image.Artist"] == "Old Camera Owner"  # no sidecar: the camera's stay
    (raw.parent / "IMG_0001.dng.xmp").write_text(_CREDITS_XMP.replace(
        "<rdf:li>Ana Lima</rdf:li>", "<rdf:li>Ana Lima</rdf:li><rdf:li>Rui Sousa</rdf:li>").replace(
        "</dc:title>", '</dc:title><dc:description><rdf:Alt><rdf:li xml:lang="x-default">Bride and groom</rdf:li>'
        "</rdf:Alt></dc:description>"))
    for suffix in (".jpg", ".tif", ".png"):
        out = raw.parent / f"out{suffix}"
        assert hostplug("render", raw, "-o", out, "--long-edge", "100").exit_code == 0
        exif = read_metadata(out)[0]
        assert exif["Exif.Image.Artist"] == "Ana Lima; Rui Sousa"
        assert exif["Exif.Image.Copyright"] == "(c) 2026 Ana Lima, all rights reserved"
        assert exif["Exif.Image.ImageDescription"] == "Bride and groom"


def test_iptc_cores_credit_line_embargo_and_job_reach_the_output(raw: Path) -> None:
    # a tester's press file lost its embargo instruction, credit line and job identifier
    (raw.parent / "IMG_0001.dng.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        'photoshop:Credit="Studio Nord / Agency" photoshop:Instructions="Embargo until Monday 09:00" '
        'photoshop:Source="Agency" photoshop:CaptionWriter="AL" photoshop:AuthorsPosition="Staff photographer" '
        'photoshop:TransmissionReference="JOB-2026-114"/></rdf:RDF></x:xmpmeta>')
    out = raw.parent / "out.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "100").exit_code == 0
    assert hostplug("rerender", out, "--exposure", "0.2").exit_code == 0
    for made in (out, raw.parent / "out_rerender.jpg"):
        xmp = xmp_of(made)
        assert (xmp["Xmp.photoshop.Credit"], xmp["Xmp.photoshop.Instructions"]) == ("Studio Nord / Agency",
                                                                                  "Embargo until Monday 09:00")
        assert (xmp["Xmp.photoshop.Source"], xmp["Xmp.photoshop.CaptionWriter"], xmp["Xmp.photoshop.AuthorsPosition"],
                xmp["Xmp.photoshop.TransmissionReference"]) == ("Agency", "AL", "Staff photographer", "JOB-2026-114")


def test_the_keyword_tree_publisher_and_terms_of_use_reach_the_output(raw: Path) -> None:
    """A tester's: lr:hierarchicalSubject was dropped, so darktable made flat tags of the output's keywords; the
    licence terms (xmpRights:UsageTerms) and the publisher were dropped too."""
    (raw.parent / "IMG_0001.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/" '
        'xmpRights:Marked="True" xmpRights:WebStatement="https://example.org/licence">'
        '<dc:publisher><rdf:Bag><rdf:li>Studio Nord</rdf:li></rdf:Bag></dc:publisher>'
        '<lr:hierarchicalSubject><rdf:Bag><rdf:li>places|France|Paris</rdf:li></rdf:Bag></lr:hierarchicalSubject>'
        '<xmpRights:UsageTerms><rdf:Alt><rdf:li xml:lang="x-default">Editorial use only</rdf:li></rdf:Alt>'
        '</xmpRights:UsageTerms></rdf:Description></rdf:RDF></x:xmpmeta>')
    for suffix in (".jpg", ".tif"):
        out = raw.parent / f"out{suffix}"
        assert hostplug("render", raw, "-o", out, "--long-edge", "100").exit_code == 0
        xmp = xmp_of(out)
        assert xmp["Xmp.lr.hierarchicalSubject"] == ["places|France|Paris"]
        assert xmp["Xmp.dc.publisher"] == ["Studio Nord"]
        assert xmp["Xmp.xmpRights.UsageTerms"] == {'lang="x-default"': "Editorial use only"}
        assert (xmp["Xmp.xmpRights.WebStatement"], xmp["Xmp.xmpRights.Marked"]) == ("https://example.org/licence",
                                                                                     "True")
        # unordered lists as the standards define them (Lightroom's tree and DC's publisher are rdf:Bag)
        packet = " ".join(raw_xmp_of(out).split())
        assert "<lr:hierarchicalSubject> <rdf:Bag>" in packet and "<dc:publisher> <rdf:Bag>" in packet


def test_a_rerender_carries_the_rating_and_keywords_the_sidecar_holds_now(raw: Path) -> None:
    """A tester's: the photographer lowered the rating and removed a client's keyword after the render; the
    re-render brought both back from the old output."""
    sidecar = raw.parent / "IMG_0001.dng.xmp"
    sidecar.write_text(_CREDITS_XMP.replace('xmlns:dc="http://purl.org/dc/elements/1.1/">', 'xmlns:dc="http://purl.'
                       'org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"><dc:subject>'
                       '<rdf:Bag><rdf:li>client-a</rdf:li><rdf:li>studio</rdf:li></rdf:Bag></dc:subject>'))
    out = raw.parent / "out.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "100").exit_code == 0
    assert (xmp_of(out)["Xmp.xmp.Rating"], xmp_of(out)["Xmp.dc.subject"]) == ("4", ["client-a", "studio"])
    sidecar.write_text(sidecar.read_text().replace('xmp:Rating="4"', 'xmp:Rating="1"').replace(
        "<rdf:li>client-a</rdf:li>", ""))
    assert hostplug("rerender", out).exit_code == 0
    again = xmp_of(raw.parent / "out_rerender.jpg")
    assert (again["Xmp.xmp.Rating"], again["Xmp.dc.subject"]) == ("1", ["studio"])
    assert again["Xmp.dc.creator"] == ["Ana Lima"]
    sidecar.write_text("<x:xmpmeta")  # unreadable now: the output's own, and a note that says so
    result = hostplug("rerender", out, "-o", raw.parent / "damaged.jpg")
    assert result.exit_code == 0 and "the raw's sidecar cannot be read" in result.stderr
    assert xmp_of(raw.parent / "damaged.jpg")["Xmp.xmp.Rating"] == "4"
    sidecar.unlink()  # no sidecar now: the output's own record is what there is
    assert hostplug("rerender", out, "-o", raw.parent / "third.jpg").exit_code == 0
    assert xmp_of(raw.parent / "third.jpg")["Xmp.xmp.Rating"] == "4"


def test_a_dngs_own_rating_and_copyright_reach_the_output_and_a_sidecar_overrides_them(raw: Path) -> None:
    # Lightroom writes a DNG's rating, keywords and copyright into the DNG itself, not into a sidecar
    import pyexiv2

    with pyexiv2.Image(str(raw)) as image:
        image.modify_xmp({"Xmp.xmp.Rating": "3", "Xmp.dc.subject": ["harbour"],
                          "Xmp.dc.rights": {'lang="x-default"': "(c) Ana Lima"}})
    out = raw.parent / "out.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "100").exit_code == 0
    xmp = xmp_of(out)
    assert (xmp["Xmp.xmp.Rating"], xmp["Xmp.dc.subject"]) == ("3", ["harbour"])
    assert xmp["Xmp.dc.rights"] == {'lang="x-default"': "(c) Ana Lima"}
    assert hostplug("edit", raw, "--exposure", "0.2").exit_code == 0
    sidecar = raw.parent / "IMG_0001.dng.xmp"
    sidecar.write_text(sidecar.read_text().replace("<rdf:Description ", '<rdf:Description xmp:Rating="5" '
                                                   'xmlns:xmp="http://ns.adobe.com/xap/1.0/" ', 1))
    again = raw.parent / "again.jpg"
    assert hostplug("render", raw, "-o", again, "--long-edge", "100").exit_code == 0
    assert xmp_of(again)["Xmp.xmp.Rating"] == "5" and xmp_of(again)["Xmp.dc.subject"] == ["harbour"]


LIGHTROOM_PLACE = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
 <rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/"
   xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
   exif:GPSLatitude="48,51.504N" exif:GPSLongitude="2,17.67E" exif:GPSAltitude="35/1" exif:GPSAltitudeRef="0"
   photoshop:City="Paris" photoshop:Country="France" photoshop:Headline="Tower" Iptc4xmpCore:Location="Champ de Mars"/>
</rdf:RDF></x:xmpmeta>"""


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_a_sidecars_geotag_and_place_reach_the_output_and_its_rerender(raw: Path, suffix: str) -> None:
    # Lightroom's and darktable's map modules write the position into a raw's sidecar: it was dropped
    from engine.output.metadata import read_exif

    (raw.parent / "IMG_0001.xmp").write_text(LIGHTROOM_PLACE)  # Adobe's name for it
    out = raw.parent / f"out{suffix}"
    assert hostplug("render", raw, "-o", out, "--long-edge", "100").exit_code == 0
    rerendered = hostplug("rerender", out, "--exposure", "0.3")
    assert rerendered.exit_code == 0, rerendered.stderr
    for image in (out, raw.parent / f"out_rerender{suffix}"):
        exif, xmp = read_exif(image), xmp_of(image)
        assert (exif["Exif.GPSInfo.GPSLatitudeRef"], exif["Exif.GPSInfo.GPSLatitude"]) == ("N", "48/1 6438/125 0/1")
        assert (exif["Exif.GPSInfo.GPSLongitudeRef"], exif["Exif.GPSInfo.GPSLongitude"]) == ("E", "2/1 1767/100 0/1")
        assert exif["Exif.GPSInfo.GPSAltitude"] == "35/1" and exif["Exif.GPSInfo.GPSAltitudeRef"] == "0"
        assert (xmp["Xmp.exif.GPSLatitude"], xmp["Xmp.photoshop.City"], xmp["Xmp.iptc.Location"]) == (
            "48,51.504N", "Paris", "Champ de Mars")
        assert (xmp["Xmp.photoshop.Country"], xmp["Xmp.photoshop.Headline"]) == ("France", "Tower")


def test_a_sidecar_position_that_is_no_coordinate_is_left_out_and_the_raws_gps_kept(raw: Path) -> None:
    from engine.output.metadata import read_exif

    with pyexiv2.Image(str(raw)) as image:  # the camera's own GPS
        image.modify_exif({"Exif.GPSInfo.GPSLatitudeRef": "S", "Exif.GPSInfo.GPSLatitude": "33/1 52/1 0/1",
                           "Exif.GPSInfo.GPSLongitudeRef": "E", "Exif.GPSInfo.GPSLongitude": "151/1 12/1 0/1"})
    (raw.parent / "IMG_0001.xmp").write_text(LIGHTROOM_PLACE.replace("48,51.504N", "95,00.0N"))
    out = raw.parent / "out.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "100").exit_code == 0
    exif, xmp = read_exif(out), xmp_of(out)
    assert (exif["Exif.GPSInfo.GPSLatitudeRef"], exif["Exif.GPSInfo.GPSLatitude"]) == ("S", "33/1 52/1 0/1")
    assert "Xmp.exif.GPSLatitude" not in xmp and xmp["Xmp.photoshop.City"] == "Paris"


def test_a_sidecar_position_replaces_only_the_raws_position() -> None:
    # darktable and Lightroom copy a raw's own position into its sidecar: the camera's GPS time, direction and
    # precision were all dropped with it; and 59.99999 seconds was written as the invalid 60
    from engine.xmp.location import with_position

    camera = {"Exif.GPSInfo.GPSTimeStamp": "10/1 2/1 3/1", "Exif.GPSInfo.GPSImgDirection": "2715/10",
              "Exif.GPSInfo.GPSLatitudeRef": "N", "Exif.GPSInfo.GPSLatitude": "1/1 0/1 0/1", "Exif.Image.Make": "X"}
    out = with_position(camera, {"Xmp.exif.GPSLatitude": "33,52,59.99999S", "Xmp.exif.GPSLongitude": "70,30.5W"})
    assert out is not None
    assert (out["Exif.GPSInfo.GPSLatitudeRef"], out["Exif.GPSInfo.GPSLatitude"]) == ("S", "33/1 53/1 0/1")
    assert (out["Exif.GPSInfo.GPSLongitudeRef"], out["Exif.GPSInfo.GPSLongitude"]) == ("W", "70/1 61/2 0/1")
    assert out["Exif.GPSInfo.GPSTimeStamp"] == "10/1 2/1 3/1" and out["Exif.GPSInfo.GPSImgDirection"] == "2715/10"
    assert with_position(camera, {"Xmp.exif.GPSLatitude": "33,52S"}) == camera  # no longitude: no position


@pytest.mark.parametrize("sidecar", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_render_refuses_a_malformed_sidecar(raw: Path, sidecar: Path) -> None:
    name = "IMG_0001.xmp" if sidecar.stem.startswith("adobe") else "IMG_0001.dng.xmp"
    shutil.copy(sidecar, raw.parent / name)
    for command in (["render", raw, "-o", raw.parent / "out.tif"], ["edit", raw, "--exposure", "1"], ["show", raw]):
        result = hostplug(*command)
        assert result.exit_code != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0], result.stderr
    assert (raw.parent / name).read_bytes() == sidecar.read_bytes()
    assert sorted(p.name for p in raw.parent.iterdir() if not p.name.startswith(".")) == sorted([raw.name, name])


def test_rerender_unchanged_gives_identical_pixels_and_format(raw: Path) -> None:
    out = raw.parent / "IMG_0001.png"
    assert hostplug("render", raw, "-o", out, "--exposure", "0.2", "--colour-space", "display-p3").exit_code == 0
    first = hostplug("rerender", out)
    assert first.exit_code == 0, first.stderr
    again = raw.parent / "IMG_0001_rerender.png"
    assert pixels(again).dtype == np.uint16 and np.array_equal(pixels(again), pixels(out))
    assert xmp_of(again)["Xmp.hostplug.recipe"] == xmp_of(out)["Xmp.hostplug.recipe"]
    assert "note" not in first.stderr
    second = hostplug("rerender", out, "--exposure", "1.2")
    assert second.exit_code == 0 and (raw.parent / "IMG_0001_rerender-2.png").is_file()  # never overwrites
    changed = pixels(raw.parent / "IMG_0001_rerender-2.png")
    assert changed.mean() > pixels(out).mean()
    taken = hostplug("rerender", out, "--out", again)
    assert taken.exit_code != 0 and "exists" in taken.stderr


@pytest.mark.parametrize("compression", ["deflate", "none"])
def test_rerender_of_a_tiff_keeps_its_compression(raw: Path, compression: str) -> None:
    import tifffile

    out = raw.parent / "IMG_0001.tif"
    assert hostplug("render", raw, "-o", out, "--long-edge", "200", "--compression", compression).exit_code == 0
    assert hostplug("rerender", out, "--exposure", "0.5").exit_code == 0
    with tifffile.TiffFile(raw.parent / "IMG_0001_rerender.tif") as tiff:
        page = tiff.pages.first
        assert (page.compression != tifffile.COMPRESSION.NONE) == (compression == "deflate")
        assert page.bitspersample == 16


def test_a_search_folder_that_is_not_there_is_a_wrong_option(raw: Path) -> None:
    # a typo in --search was silently ignored, and the raw then "could not be found"
    for command in ("rerender", "open"):
        result = hostplug(command, raw, "--search", raw.parent / "no such folder")
        assert result.exit_code == 2 and "does not exist" in result.stderr


def test_rerender_jpeg_stays_jpeg_at_its_size(raw: Path) -> None:
    out = raw.parent / "small.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "300", "--quality", "80").exit_code == 0
    assert hostplug("rerender", out, "-o", raw.parent / "again.jpg").exit_code == 0  # -o/--output, as for render
    assert np.array_equal(pixels(raw.parent / "again.jpg"), pixels(out))
    wrong = hostplug("rerender", out, "--out", raw.parent / "again.png")
    assert wrong.exit_code == 2 and "JPEG" in wrong.stderr  # a wrong option
    assert not (raw.parent / "again.png").exists()


def test_rerender_refuses_an_output_whose_recorded_hash_is_damaged(raw: Path) -> None:
    """A tester's: with one digit of the recorded SHA-256 changed, the check was skipped and another photo at the
    raw's path was rendered, exit 0."""
    out = raw.parent / "out.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "64").exit_code == 0
    data = out.read_bytes()
    recorded = re.search(rb'sourceSHA256="([0-9a-f]{64})"', data)
    assert recorded is not None
    out.write_bytes(data.replace(recorded.group(0), b'sourceSHA256="z' + recorded.group(1)[1:] + b'"'))
    result = hostplug("rerender", out)
    assert result.exit_code == 4 and "its recorded source SHA-256 'z" in result.stderr and "is damaged" in result.stderr
    assert not (raw.parent / "out_rerender.jpg").exists()


def test_rerender_finds_a_moved_raw_by_hash_and_says_where_it_looked(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert hostplug("render", raw, "-o", out).exit_code == 0
    moved = tmp_path / "archive" / raw.name
    moved.parent.mkdir()
    raw.rename(moved)
    missing = hostplug("rerender", out)
    assert missing.exit_code != 0
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and str(raw) in lines[0] and "--search" in lines[0]
    assert not list(tmp_path.glob("out_rerender*"))
    found = hostplug("rerender", out, "--search", moved.parent)
    assert found.exit_code == 0 and str(moved) in found.output


def _set_xmp(path: Path, values: dict[str, str]) -> None:
    register_namespace()
    with pyexiv2.Image(str(path)) as image:
        image.modify_xmp(values)


def test_rerender_after_an_engine_change_pins_the_stored_look(raw: Path) -> None:
    out = raw.parent / "IMG_0001.png"
    assert hostplug("render", raw, "-o", out).exit_code == 0
    _set_xmp(out, {"Xmp.hostplug.engineVersion": "0.0.1", "Xmp.hostplug.models": '{"old-model":"ab12"}'})
    kept = hostplug("rerender", out, "--output", raw.parent / "kept.png")
    assert kept.exit_code == 0
    assert "engine 0.0.1 -> " in kept.stderr and "models changed" in kept.stderr and "kept" in kept.stderr
    assert np.array_equal(pixels(raw.parent / "kept.png"), pixels(out))
    pinned = Recipe.from_json(xmp_of(raw.parent / "kept.png")["Xmp.hostplug.recipe"])
    assert pinned.stage("photofinish").params["operators"] == json.loads(
        xmp_of(out)["Xmp.hostplug.decided"])["photofinish"]["operators"]
    changed = hostplug("rerender", out, "--out", raw.parent / "changed.png", "--exposure", "1")
    assert changed.exit_code == 0 and "derived afresh" in changed.stderr
    assert "operators" not in Recipe.from_json(xmp_of(raw.parent / "changed.png")["Xmp.hostplug.recipe"]).stage(
        "photofinish").params


def test_rerender_of_a_damaged_record_names_the_file_in_one_line(raw: Path) -> None:
    # a fuzzer's: a recorded JPEG quality of null was "JPEG quality None ..." (exit 2, a wrong option, no file
    # named), a stage setting out of range was said without the file's name, and a recorded raw path longer than
    # the system allows was a traceback
    out = raw.parent / "out.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "64").exit_code == 0
    record = json.loads(xmp_of(out)["Xmp.hostplug.output"])
    _set_xmp(out, {"Xmp.hostplug.output": json.dumps({**record, "quality": None})})
    assert hostplug("rerender", out, "-o", raw.parent / "null.jpg").exit_code == 0  # a null is a value not recorded
    stored = json.loads(xmp_of(out)["Xmp.hostplug.recipe"])
    _set_xmp(out, {"Xmp.hostplug.recipe": json.dumps(
        {**stored, "stages": {"denoise": {"params": {"strength": -1}}}})})
    result = hostplug("rerender", out, "-o", raw.parent / "bad.jpg")
    assert result.exit_code == 4 and result.stderr.startswith(f"hostplug: error: {out}: its recorded recipe cannot "
                                                              "be used: stage 'denoise' parameter 'strength'")
    _set_xmp(out, {"Xmp.hostplug.recipe": json.dumps(stored), "Xmp.hostplug.sourcePath": "/" + "x" * 9000})
    (raw.parent / "moved").mkdir()
    raw.rename(raw.parent / "moved" / raw.name)
    result = hostplug("rerender", out, "-o", raw.parent / "long.jpg")
    assert result.exit_code != 0 and "Traceback" not in result.stderr and len(result.stderr) < 1000
    assert "cannot find its source raw" in result.stderr
    assert not (raw.parent / "bad.jpg").exists() and not (raw.parent / "long.jpg").exists()


def test_rerender_refuses_a_file_hostplug_did_not_make(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), np.zeros((8, 8, 3), np.uint8))
    result = hostplug("rerender", plain)
    assert result.exit_code != 0 and "no hostplug recipe" in result.stderr


def test_edit_accepts_the_learned_styles_and_blends(raw: Path, user_presets: None) -> None:
    assert hostplug("edit", raw, "--style", "warm:0.7,moody:0.3").exit_code == 0
    assert read_sidecar(raw).recipe.style == "warm:0.7,moody:0.3"


# ----- other programs' sidecars as a photographer keeps them (an audit's findings) -----------------------------


def test_a_linked_sidecar_stays_a_link_and_its_target_gets_the_edit(raw: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "IMG_0001.xmp"
    shared.parent.mkdir()
    shutil.copyfile(DARKTABLE_XMP, shared)
    link = raw.with_name(raw.name + ".xmp")
    link.symlink_to(shared)
    assert hostplug("edit", raw, "--exposure", "1").exit_code == 0
    assert link.is_symlink() and read_sidecar(raw).recipe.exposure == 1.0
    assert b"darktable:history" in shared.read_bytes() and b"hostplug:" in shared.read_bytes()
    assert not list(raw.parent.glob(".*")) and not list(shared.parent.glob(".*"))  # no lock or temporary left


def test_a_read_only_sidecar_is_refused_and_left_as_it_was(raw: Path) -> None:
    sidecar = raw.with_name(raw.name + ".xmp")
    shutil.copyfile(DARKTABLE_XMP, sidecar)
    sidecar.chmod(0o444)
    before = sidecar.read_bytes()
    result = CliRunner().invoke(main, ["edit", str(raw), "--exposure", "1"])
    assert result.exit_code == 4 and "read-only" in result.stderr and len(result.stderr.splitlines()) == 1
    assert sidecar.read_bytes() == before


def test_a_sidecar_on_a_read_only_file_system_is_not_blamed_on_its_mode(raw: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # "make it writable (chmod u+w)" on a memory card locked read-only: chmod cannot help there
    import os
    from types import SimpleNamespace

    sidecar = raw.with_name(raw.name + ".xmp")
    shutil.copyfile(DARKTABLE_XMP, sidecar)
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: not str(path).endswith(".xmp")
                        and access(path, mode, **kwargs))
    monkeypatch.setattr(os, "statvfs", lambda folder: SimpleNamespace(f_flag=os.ST_RDONLY))
    result = CliRunner().invoke(main, ["edit", str(raw), "--exposure", "1"])
    assert result.exit_code == 4 and "read-only file system" in result.stderr and "chmod" not in result.stderr


def test_a_sidecar_declared_in_latin_1_keeps_its_words(raw: Path) -> None:
    sidecar = raw.with_name(raw.name + ".xmp")
    packet = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
              'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
              'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag><rdf:li>Caf\u00e9 Z\u00fcrich'
              '</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>\n')
    sidecar.write_bytes(packet.encode("latin-1"))
    assert read_sidecar(raw).keywords == ["Caf\u00e9 Z\u00fcrich"]
    assert hostplug("edit", raw, "--exposure", "1").exit_code == 0
    assert read_sidecar(raw).keywords == ["Caf\u00e9 Z\u00fcrich"]  # the bytes are UTF-8 now, and say so
    assert sidecar.read_bytes().startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_a_tint_alone_shifts_the_stored_temperature(raw: Path) -> None:
    assert hostplug("edit", raw, "--temperature", "5200").exit_code == 0
    assert hostplug("edit", raw, "--tint", "10").exit_code == 0
    recipe = read_sidecar(raw).recipe
    assert (recipe.wb, recipe.temperature, recipe.tint) == ("custom", 5200.0, 10.0)
    other = raw.with_name("IMG_0002.dng")
    shutil.copy(raw, other)
    result = CliRunner().invoke(main, ["edit", str(other), "--tint", "10"])  # nothing stored: nothing to shift
    assert result.exit_code == 2 and "needs a temperature" in result.stderr  # a wrong option, as the README says
    assert not other.with_name(other.name + ".xmp").exists()


def test_adobes_sidecar_name_belongs_to_the_raw_not_the_jpeg_beside_it(raw: Path) -> None:
    adobe = raw.with_suffix(".xmp")
    adobe.write_text(_ADOBE.format(exposure="+0.75"))
    jpeg = raw.with_suffix(".jpg")
    cv2.imwrite(str(jpeg), np.full((8, 8, 3), 128, np.uint8))
    assert read_sidecar(raw).hints["exposure"] == 0.75
    assert read_sidecar(jpeg) is None


def test_adobes_values_are_checked_only_when_used(raw: Path) -> None:
    raw.with_suffix(".xmp").write_text(_ADOBE.format(exposure="n/a"))
    result = CliRunner().invoke(main, ["show", str(raw)])
    assert result.exit_code == 4 and "crs:Exposure2012 'n/a' is not a number" in result.stderr
    assert hostplug("edit", raw, "--contrast", "10").exit_code == 4  # the hints would start the recipe: refused
    raw.with_suffix(".xmp").write_text(_ADOBE.format(exposure="nan"))
    assert "is not a number" in CliRunner().invoke(main, ["show", str(raw)]).stderr
    raw.with_name(raw.name + ".xmp").write_text(_OURS)  # a recipe of ours: Adobe's values are not used
    assert hostplug("show", raw).exit_code == 0


_ADOBE = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
          '<rdf:Description xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" '
          'crs:Exposure2012="{exposure}"/></rdf:RDF></x:xmpmeta>')
_OURS = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
         '<rdf:Description xmlns:hostplug="http://ns.hostplug.org/xmp/1.0/" hostplug:schemaVersion="7" '
         'hostplug:exposure="0.5"/></rdf:RDF></x:xmpmeta>')


def test_an_outputs_own_xmp_as_a_sidecar_is_no_stored_edit(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jpg"
    assert hostplug("render", raw, "-o", out, "--no-service", "--exposure", "0.5").exit_code == 0
    copy = tmp_path / "copy.jpg"
    shutil.copy(out, copy)
    with pyexiv2.Image(str(out)) as image:
        packet = image.read_raw_xmp()
    copy.with_name("copy.jpg.xmp").write_text(packet)  # as `exiftool -xmp -b out.jpg > copy.jpg.xmp` makes it
    result = hostplug("show", copy, "--json")
    assert result.exit_code == 0 and json.loads(result.output)["recipe"] is None
    assert hostplug("edit", copy, "--contrast", "10").exit_code == 0
    assert b"sourceSHA256" in copy.with_name("copy.jpg.xmp").read_bytes()  # its provenance is kept


def test_an_empty_sidecar_reads_as_none_and_takes_an_edit(raw: Path) -> None:
    sidecar = raw.with_name(raw.name + ".xmp")
    sidecar.write_bytes(b"")
    assert json.loads(hostplug("show", raw, "--json").output)["recipe"] is None
    assert hostplug("edit", raw, "--exposure", "0.25").exit_code == 0
    assert read_sidecar(raw).recipe.exposure == 0.25


def test_comments_in_a_sidecar_keep_their_bytes(raw: Path) -> None:
    sidecar = raw.with_name(raw.name + ".xmp")
    sidecar.write_text(_ADOBE.format(exposure="0").replace("<rdf:Description", "<!-- a?><b --><rdf:Description"))
    assert hostplug("edit", raw, "--exposure", "0.25").exit_code == 0
    assert b"<!-- a?><b -->" in sidecar.read_bytes()


def test_a_preset_of_stage_params_keeps_a_stage_switched_off(raw: Path, user_presets: None, tmp_path: Path) -> None:
    folder = tmp_path / "config" / "hostplug" / "presets"
    folder.mkdir(parents=True)
    (folder / "NR.XMP").write_text(_OURS.replace('hostplug:exposure="0.5"',
                                                 """hostplug:stages='{"denoise":{"params":{"strength":50}}}'"""))
    assert hostplug("edit", raw, "--disable", "denoise").exit_code == 0
    assert hostplug("edit", raw, "--preset", "nr").exit_code == 0  # found though its suffix is upper case
    stage = read_sidecar(raw).recipe.stage("denoise")
    assert not stage.enabled and stage.params["strength"] == 50


def test_lower_case_true_is_read_as_true(raw: Path) -> None:
    raw.with_name(raw.name + ".xmp").write_text(_OURS.replace('hostplug:exposure="0.5"',
                                                              'hostplug:auto_exposure="true"'))
    assert read_sidecar(raw).recipe.auto_exposure is True


def test_edit_of_a_folder_says_it_is_one(raw: Path) -> None:
    result = CliRunner().invoke(main, ["edit", str(raw.parent), "--exposure", "1"])
    assert result.exit_code == 2 and result.stderr.strip().endswith("is a folder; name the files in it")


def test_a_raw_changed_since_its_output_says_so_and_its_recipe_can_be_reused(raw: Path, tmp_path: Path) -> None:
    import shlex

    folder = tmp_path / "Fotos été"  # a tester's: the command the error suggests must survive a paste into a shell
    folder.mkdir()
    raw = Path(shutil.copy(raw, folder / "IMG 01.dng"))
    out = tmp_path / "out.png"
    assert hostplug("render", raw, "-o", out, "--no-service", "--exposure", "0.5").exit_code == 0
    with raw.open("ab") as f:
        f.write(b"\0")  # what a program writing metadata into the raw does to its SHA-256
    result = CliRunner().invoke(main, ["rerender", str(out)])
    assert result.exit_code != 0 and "is not the raw it was rendered from (its content changed" in result.stderr
    assert "--search" in result.stderr
    suggested = shlex.split(result.stderr.split("recipe: ", 1)[1])
    assert suggested[:3] == ["hostplug", "render", str(raw)] and suggested[-1] == str(out)
    again = tmp_path / "again.png"
    assert hostplug("render", raw, "-o", again, "--no-service", "--recipe", out).exit_code == 0
    assert np.array_equal(pixels(again), pixels(out))


def test_rerender_of_a_file_that_is_no_image_says_so(tmp_path: Path) -> None:
    text = tmp_path / "text.dng"
    text.write_text("hello")
    result = CliRunner().invoke(main, ["rerender", str(text)])
    assert result.exit_code == 3 and "only hostplug outputs can be re-rendered" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_edit_without_changes_writes_nothing(raw: Path) -> None:
    # it wrote the whole default recipe, and rewrote another program's sidecar for nothing
    sidecar = raw.with_name(raw.name + ".xmp")
    sidecar.write_text(_OURS)
    before = sidecar.read_bytes()
    result = hostplug("edit", raw)
    assert result.exit_code == 2 and "give the changes to store" in result.stderr
    assert sidecar.read_bytes() == before


@pytest.mark.parametrize("kind", ["truncated", "cut in its header", "GoPro VC-5"])
def test_show_and_edit_refuse_what_render_refuses_with_its_line(tmp_path: Path, kind: str) -> None:
    # they read only the header: a truncated DNG showed "renders with the defaults" (or, cut shorter, "a TIFF named
    # like a raw: rename it .tif"), and a GoPro GPR took an edit; render refuses all three
    from tests.conftest import RAWSAMPLES, SAMPLE_DNG, error_lines, need

    if kind == "GoPro VC-5":
        raw = Path(shutil.copy(need(RAWSAMPLES / "unsupported" / "gopro_hero6__gpr_GOPR0024.GPR"), tmp_path))
    else:
        raw = tmp_path / "cut.dng"
        raw.write_bytes(SAMPLE_DNG.read_bytes()[:100_000 if kind == "truncated" else 5_000])
    rendered = hostplug("render", raw, "-o", tmp_path / "x.tif")
    assert rendered.exit_code == 3
    for command in (("show", raw), ("edit", raw, "--exposure", "1")):
        result = hostplug(*command)
        assert (result.exit_code, error_lines(result.stderr)) == (3, error_lines(rendered.stderr))
    assert not list(tmp_path.glob("*.xmp"))


def test_a_lossy_dng_that_renders_takes_an_edit(tmp_path: Path) -> None:
    # edit refused it as "lossy JPEG compression, which LibRaw cannot decode", while render rendered it
    from tests.conftest import NIKON, need, read_metadata

    raw = Path(shutil.copy(need(NIKON), tmp_path))
    assert hostplug("edit", raw, "--exposure", "0.3").exit_code == 0
    assert hostplug("show", raw).exit_code == 0
    rendered = hostplug("render", raw, "-o", tmp_path / "x.png", "--long-edge", "128")
    assert rendered.exit_code == 0
    assert Recipe.from_json(read_metadata(tmp_path / "x.png")[1]["Xmp.hostplug.recipe"]).exposure == 0.3


def test_an_older_lightroom_process_gives_its_exposure_and_names_what_is_not_rendered(tmp_path: Path,
                                                                                  sample_dng: Path) -> None:
    # a PV2010 sidecar's +1.5 EV and +25 contrast were dropped without a word
    shown, text = _shown_with_adobe(tmp_path, sample_dng, 'crs:HasSettings="True" crs:ProcessVersion="5.7" '
                                    'crs:Exposure="+1.50" crs:Contrast="+25" crs:Brightness="+50"')
    assert shown["hints"] == {"exposure": 1.5}
    assert shown["adobe_unused"] == ["crs:Contrast=+25", "crs:Brightness=+50"]
    assert "not used:   crs:Contrast=+25, crs:Brightness=+50" in text


def _shown_with_adobe(folder: Path, sample_dng: Path, crs: str) -> tuple[dict, str]:
    """``show --json`` and ``show`` of a copy of the sample DNG beside an Adobe sidecar holding ``crs``."""
    raw = folder / "A.dng"
    raw.write_bytes(sample_dng.read_bytes())
    (folder / "A.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" {crs}/>'
        '</rdf:RDF></x:xmpmeta>')
    return json.loads(hostplug("show", raw, "--json").stdout), hostplug("show", raw).stdout


def test_a_lightroom_crop_and_other_edits_hostplug_does_not_render_are_named(tmp_path: Path, sample_dng: Path) -> None:
    # a tester's Lightroom crop (and clarity, dehaze) were dropped without a word: show listed nothing unused
    shown, text = _shown_with_adobe(
        tmp_path, sample_dng, 'crs:ProcessVersion="11.0" crs:Exposure2012="+0.5" crs:HasCrop="True" crs:CropTop="0.1" '
        'crs:CropLeft="0.1" crs:CropBottom="0.5" crs:CropRight="0.9" crs:Clarity2012="+40" crs:Dehaze="+30" '
        'crs:Texture="0" crs:HueAdjustmentRed="+5" crs:ConvertToGrayscale="False"')
    assert shown["hints"] == {"exposure": 0.5}
    assert shown["adobe_unused"] == ["crs:HasCrop=True (top 0.1, left 0.1, bottom 0.5, right 0.9)",
                                     "crs:Clarity2012=+40", "crs:Dehaze=+30", "crs:HueAdjustmentRed=+5"]
    assert "not used:   crs:HasCrop=True" in text and "does not render" in text and "before 2012" not in text


def test_lightroom_masks_healing_point_curve_and_lens_corrections_are_named_as_not_rendered(
        tmp_path: Path, sample_dng: Path) -> None:
    """A tester's: docs say show names every Lightroom edit hostplug does not render; these were not named."""
    raw = tmp_path / "A.dng"
    raw.write_bytes(sample_dng.read_bytes())
    (tmp_path / "A.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" '
        'crs:LuminanceSmoothing="20" crs:LensProfileEnable="1" crs:PerspectiveUpright="0" '
        'crs:PerspectiveScale="100" crs:PerspectiveVertical="12" crs:Sharpness="70" crs:ColorNoiseReduction="25">'
        '<crs:ToneCurvePV2012><rdf:Seq><rdf:li>0, 0</rdf:li><rdf:li>128, 140</rdf:li><rdf:li>255, 255</rdf:li>'
        '</rdf:Seq></crs:ToneCurvePV2012><crs:ToneCurvePV2012Red><rdf:Seq><rdf:li>0, 0</rdf:li>'
        '<rdf:li>255, 255</rdf:li></rdf:Seq></crs:ToneCurvePV2012Red><crs:ToneCurvePV2012Blue><rdf:Seq>'
        '<rdf:li>0, 10</rdf:li><rdf:li>255, 255</rdf:li></rdf:Seq></crs:ToneCurvePV2012Blue>'
        '<crs:GradientBasedCorrections><rdf:Seq/></crs:GradientBasedCorrections><crs:MaskGroupBasedCorrections><rdf:Seq>'
        '<rdf:li rdf:parseType="Resource"><crs:LocalExposure2012>-0.8</crs:LocalExposure2012></rdf:li></rdf:Seq>'
        '</crs:MaskGroupBasedCorrections><crs:RetouchAreas><rdf:Seq><rdf:li rdf:parseType="Resource">'
        '<crs:SpotType>heal</crs:SpotType></rdf:li></rdf:Seq></crs:RetouchAreas></rdf:Description></rdf:RDF>'
        '</x:xmpmeta>')
    shown = json.loads(hostplug("show", raw, "--json").stdout)
    assert sorted(shown["adobe_unused"]) == sorted([
        "crs:MaskGroupBasedCorrections (masks)", "crs:RetouchAreas (spot healing)",
        "crs:ToneCurvePV2012 (a point curve)", "crs:ToneCurvePV2012Blue (a point curve)",
        "crs:LuminanceSmoothing=20", "crs:LensProfileEnable=1", "crs:PerspectiveVertical=12",
        "crs:Sharpness=70"])  # not the linear red curve, the empty filters, nor the Transform's scale at 100 or the
    # colour noise reduction at 25, Lightroom's defaults


def test_a_sidecar_position_drops_the_cameras_void_fix_status() -> None:
    # the camera had no fix ("V": measurement void) and the output called the sidecar's position void
    from engine.xmp.location import with_position

    camera = {"Exif.GPSInfo.GPSStatus": "V", "Exif.GPSInfo.GPSTimeStamp": "12/1 0/1 0/1"}
    merged = with_position(camera, {"Xmp.exif.GPSLatitude": "48,51.3944N", "Xmp.exif.GPSLongitude": "2,17.4E"})
    assert "Exif.GPSInfo.GPSStatus" not in merged and merged["Exif.GPSInfo.GPSLatitudeRef"] == "N"
    assert merged["Exif.GPSInfo.GPSTimeStamp"] == "12/1 0/1 0/1"  # the camera's time stays
    assert with_position({"Exif.GPSInfo.GPSStatus": "A"}, {"Xmp.exif.GPSLatitude": "48,51.3944N",
                                                           "Xmp.exif.GPSLongitude": "2,17.4E"})[
        "Exif.GPSInfo.GPSStatus"] == "A"


def _stored(raw: Path) -> dict[str, object]:
    shown = hostplug("show", raw, "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)["recipe"]


def test_what_edit_stored_can_be_undone_from_the_command_line(raw: Path) -> None:
    # a stage switched off stayed off (--use on it did nothing, without a word), and a stored denoise or
    # sharpening amount could never go back to automatic
    assert hostplug("edit", raw, "--disable", "detail", "--denoise", "30", "--sharpening", "80").exit_code == 0
    back = hostplug("edit", raw, "--use", "detail=classical", "--denoise", "auto", "--sharpening", "Auto")
    assert back.exit_code == 0, back.stderr
    stored = _stored(raw)
    assert stored["stages"] == {"detail": {"enabled": True, "implementation": "classical"}}
    assert (stored["denoise"], stored["sharpening"]) == (None, None)
    both = hostplug("edit", raw, "--disable", "detail", "--use", "detail=learned")
    assert both.exit_code == 2 and "either switched off or given an implementation" in both.stderr
    assert hostplug("edit", raw, "--denoise", "lots").exit_code == 2


def test_a_wrong_option_value_exits_2_as_clicks_own_checks_do(raw: Path, tmp_path: Path) -> None:
    # --wb bogus exited 2 and --style bogus 4; --quality 200 exited 2 and --exposure 99 4
    for args in (["--style", "bogus"], ["--exposure", "99"], ["--wb", "auto", "--temperature", "4000"]):
        result = hostplug("render", raw, "-o", tmp_path / "x.jpg", *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "x.jpg").exists()


def test_edit_can_repair_damaged_settings_of_ours_and_says_how(raw: Path, tmp_path: Path) -> None:
    # a sidecar holding an exposure of 99 could not be edited at all, not even with a whole new recipe
    sidecar = raw.with_name(raw.name + ".xmp")
    if DARKTABLE_XMP.is_file():  # with darktable's edits in it, which must stay
        sidecar.write_bytes(DARKTABLE_XMP.read_bytes())
    assert hostplug("edit", raw, "--exposure", "0.5").exit_code == 0
    sidecar.write_text(sidecar.read_text().replace('hostplug:exposure="0.5"', 'hostplug:exposure="99"'))
    others = sidecar.read_text().replace('hostplug:exposure="99"', "")
    refused = hostplug("edit", raw, "--contrast", "10")
    assert refused.exit_code == 4
    assert "exposure 99 is out of range" in refused.stderr and "--recipe FILE" in refused.stderr
    recipe = tmp_path / "r.json"
    recipe.write_text('{"exposure": 0.2}')
    assert hostplug("edit", raw, "--recipe", recipe, "--contrast", "10").exit_code == 0
    assert (_stored(raw)["exposure"], _stored(raw)["contrast"]) == (0.2, 10.0)
    if DARKTABLE_XMP.is_file():  # darktable's history is kept
        assert "darktable:history" in sidecar.read_text() and "darktable:history" in others
    newer = sidecar.read_text().replace('hostplug:schemaVersion="', 'hostplug:schemaVersion="9')
    sidecar.write_text(newer)
    again = hostplug("edit", raw, "--recipe", recipe)
    assert again.exit_code == 4 and "newer hostplug" in again.stderr
    assert sidecar.read_text() == newer


def test_show_json_has_the_same_keys_with_or_without_a_sidecar(raw: Path) -> None:
    bare = json.loads(hostplug("show", raw, "--json").stdout)
    assert hostplug("edit", raw, "--exposure", "0.1").exit_code == 0
    edited = json.loads(hostplug("show", raw, "--json").stdout)
    assert sorted(bare) == sorted(edited)
    assert (bare["rating"], bare["keywords"], bare["recipe"]) == (None, [], None)


def test_show_names_darktable_s_edits_as_not_rendered(raw: Path) -> None:
    # a tester read the README's "show prints the edits darktable left" and found them neither shown nor applied:
    # darktable's history is its own pipeline; show names what it applies, leaving out the pipeline's structure,
    # the orientation (which a render applies), switched-off and undone steps
    raw.with_name(raw.name + ".xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/" darktable:history_end="5">'
        '<darktable:history><rdf:Seq>'
        '<rdf:li darktable:operation="rawprepare" darktable:enabled="1"/>'
        '<rdf:li darktable:operation="exposure" darktable:enabled="1"/>'
        '<rdf:li darktable:operation="colorbalancergb" darktable:enabled="0"/>'
        '<rdf:li darktable:operation="filmicrgb" darktable:enabled="1"/>'
        '<rdf:li darktable:operation="exposure" darktable:enabled="1"/>'
        '<rdf:li darktable:operation="vignette" darktable:enabled="1"/>'
        '</rdf:Seq></darktable:history></rdf:Description></rdf:RDF></x:xmpmeta>')
    result = hostplug("show", raw)
    assert result.exit_code == 0
    assert "  darktable:  exposure, filmicrgb (darktable's own edits and defaults, which hostplug does not render" \
        in result.output, result.output
    assert json.loads(hostplug("show", "--json", raw).output)["darktable_edits"] == ["exposure", "filmicrgb"]
    assert json.loads(hostplug("show", "--json", SAMPLE).output)["darktable_edits"] == []  # no sidecar: the key too


_DARKTABLE_CROP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/" darktable:history_end="2">'
    '<darktable:history><rdf:Seq><rdf:li darktable:operation="exposure" darktable:enabled="1"/>'
    '<rdf:li darktable:operation="crop" darktable:enabled="1"/></rdf:Seq></darktable:history>'
    '</rdf:Description></rdf:RDF></x:xmpmeta>')


def test_a_render_says_that_another_programs_crop_is_not_applied(raw: Path, tmp_path: Path) -> None:
    """A tester's: a darktable crop was dropped without a word (the output the whole frame, exit 0)."""
    raw.with_name(raw.name + ".xmp").write_text(_DARKTABLE_CROP)
    result = hostplug("render", raw, "-o", tmp_path / "a.jpg", "--long-edge", "64")
    assert result.exit_code == 0
    assert ("hostplug: note: the crop set in darktable (IMG_0001.dng.xmp) is not applied; hostplug renders the whole "
            "frame") in result.output
    switched_off = _DARKTABLE_CROP.replace('history_end="2"', 'history_end="3"').replace(
        "</rdf:Seq>", '<rdf:li darktable:operation="crop" darktable:enabled="0"/></rdf:Seq>')
    raw.with_name(raw.name + ".xmp").write_text(switched_off)  # a crop switched off again is no crop (a reviewer's)
    assert "note:" not in hostplug("render", raw, "-o", tmp_path / "off.jpg", "--long-edge", "64").output
    raw.with_name(raw.name + ".xmp").unlink()
    _shown_with_adobe(tmp_path, raw, 'crs:HasCrop="True" crs:CropTop="0.1"')  # A.dng beside A.xmp
    result = hostplug("render", tmp_path / "A.dng", "-o", tmp_path / "b.jpg", "--long-edge", "64", "--json")
    assert json.loads(result.stdout)["notice"].startswith("the crop set in Lightroom/Camera Raw (A.xmp) is not applied")
    plain = hostplug("render", raw, "-o", tmp_path / "c.jpg", "--long-edge", "64")
    assert "note:" not in plain.output


def test_a_lightroom_value_beyond_the_recipes_range_is_said_where_it_is_clamped(tmp_path: Path,
                                                                             sample_dng: Path) -> None:
    """A tester's: Lightroom's temperature goes to 50000 K, the recipe's to 25000, and Highlights +80 with Whites
    +60 fold into highlights 110; both were clamped without a word."""
    shown, text = _shown_with_adobe(tmp_path, sample_dng, 'crs:WhiteBalance="Custom" crs:Temperature="30000" '
                                    'crs:Tint="+10" crs:Highlights2012="+80" crs:Whites2012="+60"')
    assert shown["hints"]["temperature"] == 25000.0 and shown["hints"]["highlights"] == 100.0
    assert shown["hints_clamped"] == [
        "highlights 110 from Lightroom's settings (A.xmp) is beyond hostplug's -100 to 100: rendered at 100",
        "temperature 30000 from Lightroom's settings (A.xmp) is beyond hostplug's 1700 to 25000: rendered at 25000"]
    assert "  clamped:    temperature 30000 from Lightroom's settings (A.xmp)" in text
    result = hostplug("render", tmp_path / "A.dng", "-o", tmp_path / "a.jpg", "--long-edge", "64", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["notice"] == "; ".join(shown["hints_clamped"])
    for override in (["--temperature", "6000"], ["--wb", "auto"]):  # Lightroom's temperature not used: not said
        overridden = hostplug("render", tmp_path / "A.dng", "-o", tmp_path / "o.jpg", "--long-edge", "64", "--json",
                              "--overwrite", *override)
        assert json.loads(overridden.stdout)["notice"] == shown["hints_clamped"][0], overridden.stdout  # highlights
    edited = hostplug("edit", tmp_path / "A.dng", "--saturation", "20")  # stores Lightroom's, at the range's end
    assert edited.exit_code == 0 and len(error_lines(edited.stderr)) == 2 and (
        "hostplug: note: temperature 30000 from Lightroom's settings (A.xmp) is beyond hostplug's 1700 to 25000: "
        "rendered at 25000; the recipe stores it so") in edited.stderr
    assert "highlights 110" in edited.stderr
    hostplug("edit", tmp_path / "A.dng", "--temperature", "6000")  # a recipe of ours: Lightroom's are not used
    assert json.loads(hostplug("show", tmp_path / "A.dng", "--json").stdout)["hints_clamped"] == []
    again = hostplug("render", tmp_path / "A.dng", "-o", tmp_path / "b.jpg", "--long-edge", "64", "--json")
    assert "notice" not in json.loads(again.stdout)


def test_outputs_never_take_a_sidecars_or_a_streams_name(raw: Path, tmp_path: Path) -> None:
    """A tester's: -o IMG.dng.xmp --format png replaced darktable's sidecar with a PNG; as root, -o /dev/stdout
    --overwrite (stdout redirected to a file) replaced the link with a file; -o - wrote a file named '-'."""
    sidecar = raw.with_name(raw.name + ".xmp")
    sidecar.write_text(_DARKTABLE_CROP)
    result = hostplug("render", raw, "-o", sidecar, "--format", "png", "--overwrite")
    assert result.exit_code == 2 and "is named as a sidecar, not a PNG file" in result.stderr
    assert sidecar.read_text() == _DARKTABLE_CROP
    with open(tmp_path / "sink", "w") as sink:  # standard output redirected to a file, as a shell's > does
        stream = tmp_path / "mystdout"
        stream.symlink_to(f"/proc/self/fd/{sink.fileno()}")
        result = hostplug("render", raw, "-o", stream, "--format", "jpeg", "--overwrite")
    assert result.exit_code == 5 and "a stream, not a file" in result.stderr and stream.is_symlink()
    result = hostplug("render", raw, "-o", "-", "--format", "jpeg")
    assert result.exit_code == 5 and "not to standard output" in result.stderr


def test_a_fifo_at_an_outputs_name_is_passed_by_not_waited_on(raw: Path) -> None:
    """A tester's FIFO at open's output name hung open (and the render service) for ever: exiv2 waited on it."""
    import os

    from tests.conftest import hostplug_process

    os.mkfifo(raw.with_name("IMG_0001_hostplug.tif"))
    done = hostplug_process("open", raw, "--no-service")  # a process with a time limit: a regression fails, not hangs
    assert done.returncode == 0 and done.stdout.strip().endswith("IMG_0001_hostplug-2.tif")


def test_a_rerender_whose_recorded_raw_is_a_link_loop_says_it_cannot_find_it(raw: Path) -> None:
    out = raw.parent / "r.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "64").exit_code == 0
    raw.rename(raw.with_suffix(".real"))
    raw.symlink_to(raw)  # a link to itself where the raw was
    result = hostplug("rerender", out)
    assert result.exit_code == 2 and "cannot find its source raw" in result.stderr and "Traceback" not in result.output


def test_an_output_named_with_format_is_rerendered_under_a_name_of_its_format(raw: Path) -> None:
    out = raw.parent / "x.v2"
    assert hostplug("render", raw, "-o", out, "--format", "tiff", "--long-edge", "64").exit_code == 0
    assert hostplug("rerender", out).exit_code == 0 and (raw.parent / "x_rerender.tif").exists()
    (raw.parent / "x_rerender-2.tif").symlink_to(raw.parent / "gone.tif")  # a dangling link takes its name too
    assert hostplug("rerender", out).exit_code == 0 and (raw.parent / "x_rerender-3.tif").exists()


def test_a_rerender_of_an_output_without_a_recorded_hash_says_the_raw_was_unchecked(raw: Path) -> None:
    import pyexiv2

    from engine.output.metadata import register_namespace

    out = raw.parent / "q.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "64").exit_code == 0
    register_namespace()
    with pyexiv2.Image(str(out)) as image:
        image.modify_xmp({"Xmp.hostplug.sourceSHA256": None})
    result = hostplug("rerender", out)
    assert result.exit_code == 0 and "records no SHA-256 of its raw" in result.stderr


def test_show_and_info_escape_what_could_rewrite_the_terminal(raw: Path) -> None:
    """A keyword holding a carriage return or a right-to-left override (another program's sidecar; XML allows
    both) was printed raw by show, and a file name's escape sequence by info: the terminal obeyed them (wrote
    over the line, reversed it, turned it red). Escaped, as error lines are; the lines themselves stay lines."""
    (raw.parent / "IMG_0001.dng.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
        '<rdf:li>client&#xd;studio\u202e</rdf:li><rdf:li>b&#xa;  rating:     5</rdf:li></rdf:Bag></dc:subject>'
        '</rdf:Description></rdf:RDF></x:xmpmeta>')
    shown = hostplug("show", raw)
    assert shown.exit_code == 0
    assert "\r" not in shown.output and "\u202e" not in shown.output and "client\\rstudio\\u202e" in shown.output
    assert "b\\n  rating:     5" in shown.output  # a newline in a keyword fakes no line (a reviewer's)
    assert len(shown.output.splitlines()) > 3
    assert not [line for line in shown.output.splitlines() if line.startswith("  rating:     5")]
    odd = raw.parent / "IMG\x1b[31m_\n0002.dng"
    shutil.copy(raw, odd)
    described = hostplug("info", odd)
    assert described.exit_code == 0 and "\x1b" not in described.output and "IMG\\x1b[31m_\\n0002" in described.output


def test_a_capture_time_corrected_in_the_sidecar_reaches_the_output(raw: Path) -> None:
    """A tester's: Lightroom's "Edit Capture Time" (a camera clock a year off) was dropped while the sidecar's
    geotag was used: outputs sorted and dated wrong. The camera's own time copied into a sidecar changes nothing."""
    from engine.output.metadata import read_exif

    sidecar = raw.parent / "IMG_0001.xmp"
    sidecar.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
        'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" exif:DateTimeOriginal="2022-01-01T10:00:00.50+01:00" '
        'photoshop:DateCreated="2022-01-01T10:00:00.50+01:00"/></rdf:RDF></x:xmpmeta>')
    out = raw.parent / "out.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "100").exit_code == 0
    exif = read_exif(out)
    assert (exif["Exif.Photo.DateTimeOriginal"], exif["Exif.Photo.SubSecTimeOriginal"],
            exif["Exif.Photo.OffsetTimeOriginal"]) == ("2022:01:01 10:00:00", "50", "+01:00")
    assert xmp_of(out)["Xmp.exif.DateTimeOriginal"] == "2022-01-01T10:00:00.50+01:00"
    assert hostplug("rerender", out, "--exposure", "0.2").exit_code == 0  # a re-render keeps it
    assert read_exif(raw.parent / "out_rerender.jpg")["Exif.Photo.DateTimeOriginal"] == "2022:01:01 10:00:00"
    with pyexiv2.Image(str(raw)) as image:  # a camera time with its fraction
        image.modify_exif({"Exif.Photo.DateTimeOriginal": "2021:05:06 07:08:09", "Exif.Photo.SubSecTimeOriginal": "45"})
    sidecar.write_text(sidecar.read_text().replace('exif:DateTimeOriginal="2022-01-01T10:00:00.50+01:00" ', "")
                       .replace("2022-01-01T10:00:00.50+01:00", "2021:05:06 07:08:09.000"))  # as darktable copies it
    assert hostplug("render", raw, "-o", out, "--long-edge", "100", "--overwrite").exit_code == 0
    exif = read_exif(out)
    assert (exif["Exif.Photo.DateTimeOriginal"], exif["Exif.Photo.SubSecTimeOriginal"]) == ("2021:05:06 07:08:09", "45")


def test_show_of_an_output_says_how_it_was_made(raw: Path) -> None:
    """A tester's: `show` of a hostplug output said "no sidecar; renders with the defaults"; only rerender (which
    renders) revealed the recipe, raw and hash every output records."""
    from engine.filehash import file_sha256

    out = raw.parent / "made.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "100", "--style", "vivid", "--exposure",
                    "0.3").exit_code == 0
    shown = hostplug("show", out)
    assert shown.exit_code == 0
    assert shown.output.splitlines()[:3] == [f"{out}: a hostplug render",
                                             f"  rendered from: {raw} (SHA-256 {file_sha256(raw)[:16]}...)",
                                             "  its recipe:    style vivid, exposure 0.3"]
    data = json.loads(hostplug("show", out, "--json").output)
    assert data["rendered"]["source_sha256"] == file_sha256(raw) and data["rendered"]["recipe"]["style"] == "vivid"
    assert json.loads(hostplug("show", raw, "--json").output)["rendered"] is None


def test_a_jpeg_that_cannot_hold_the_raw_s_exif_says_what_it_left_out(raw: Path) -> None:
    """A tester's: a 70 000-character description was left out of JPEG and PNG outputs without a word."""
    with pyexiv2.Image(str(raw)) as image:
        image.modify_exif({"Exif.Image.ImageDescription": "A" * 70000})
    result = hostplug("render", raw, "-o", raw.parent / "long.jpg", "--long-edge", "64")
    assert result.exit_code == 0
    assert f"hostplug: note: {raw.parent / 'long.jpg'} leaves out the raw's EXIF ImageDescription: more than the 64 " \
           "KB of EXIF that exiv2 writes into a JPEG (a TIFF keeps it)" in result.stderr
    again = hostplug("rerender", raw.parent / "long.jpg", "--exposure", "0.1")  # a re-render says it too
    assert again.exit_code == 0 and "leaves out the raw's EXIF ImageDescription" in again.stderr
    tiff = hostplug("render", raw, "-o", raw.parent / "long.tif", "--long-edge", "64")
    assert tiff.exit_code == 0 and "leaves out" not in tiff.stderr


def test_a_raw_found_through_search_that_changed_is_named_not_called_missing(raw: Path, tmp_path: Path) -> None:
    """A tester's: the raw moved to an archive and changed there; `rerender --search archive` said it could not
    find the raw and to pass its folder with --search, which it had been given."""
    out = tmp_path / "P1.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "64").exit_code == 0
    archive = tmp_path / "archive"
    archive.mkdir()
    moved = Path(shutil.move(raw, archive / raw.name))
    with moved.open("ab") as f:
        f.write(b"x")
    result = hostplug("rerender", out, "--search", archive)
    assert result.exit_code == 2 and error_lines(result.stderr) == [
        f"hostplug: error: {out}: {moved} is not the raw it was rendered from (its content changed since: a program "
        f"may have written metadata into it, or it is another photo); to render it with the output's recipe: "
        f"hostplug render {moved} -o NEW --recipe {out}"]


def test_show_says_when_lightroom_s_settings_moved_on_from_the_stored_recipe(raw: Path) -> None:
    """A tester's: the first `edit` stored Lightroom's exposure; changed in Lightroom afterwards it went on rendering
    as stored, and `show` gave no sign, nor a way to take it."""
    adobe = raw.with_suffix(".xmp")
    adobe.write_text((DATA / "adobe-camera-raw.xmp").read_text())
    assert hostplug("edit", raw, "--style", "moody").exit_code == 0
    assert "lightroom:" not in hostplug("show", raw).output  # as stored
    text = adobe.read_text()
    adobe.write_text(re.sub(r'crs:Exposure2012="[^"]*"', 'crs:Exposure2012="-1.20"', text))
    shown = hostplug("show", raw)
    assert f"  lightroom:  exposure -1.2 in {adobe.name}; the recipe's differ and the recipe renders" in shown.output
    assert f"(to take Lightroom's: hostplug edit {raw} --exposure -1.2)" in shown.output
    assert json.loads(hostplug("show", raw, "--json").output)["adobe_differs"] == {"exposure": -1.2}
    adobe.write_text(re.sub(r'crs:WhiteBalance="[^"]*"', 'crs:WhiteBalance="As Shot"', adobe.read_text()))
    assert json.loads(hostplug("show", raw, "--json").output)["adobe_differs"] == {"exposure": -1.2, "wb": "as-shot"}


def test_other_raws_beside_an_output_whose_raw_went_are_not_called_changed(raw: Path) -> None:
    # a reviewer's: every raw of the folder was listed as "not the raw it was rendered from", the first suggested
    out = raw.parent / "IMG_0001.jpg"
    assert hostplug("render", raw, "-o", out, "--long-edge", "64").exit_code == 0
    shutil.copy(raw, raw.parent / "DSC_5.dng")
    with (raw.parent / "DSC_5.dng").open("ab") as f:
        f.write(b"another photo")
    raw.unlink()
    result = hostplug("rerender", out)
    assert result.exit_code == 2 and "cannot find its source raw" in result.stderr and "DSC_5" not in result.stderr
