"""``hostplug open``: the editors' hand-off. A raw becomes a 16-bit TIFF beside it; an editor's TIFF of a raw is
re-rendered in place; names with spaces and non-ASCII characters work; bad input is one line and nothing written.

Renders use copies of the bundled 900 x 600 synthetic DNG; finding sources is tested on tiny TIFFs with XMP.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyexiv2
import pytest
import tifffile

from engine.errors import InputNotFoundError
from engine.output.export import file_sha256
from engine.output.metadata import register_namespace
from engine.recipe import RECIPE_VERSION
from engine.xmp.provenance import find_source, read_provenance, stem_candidates
from tests.conftest import error_lines, hostplug, hostplug_process

NAME = "Été 2024 — IMG 0001"  # spaces, accents and a non-Latin-1 dash


@pytest.fixture
def raw(tmp_path: Path, sample_dng: Path) -> Path:
    """A copy of the bundled DNG under an awkward name, in a folder with a space and an accent."""
    folder = tmp_path / "Photos à trier"
    folder.mkdir()
    return Path(shutil.copy(sample_dng, folder / f"{NAME}.dng"))


def open_json(*args: object) -> dict:
    result = hostplug("open", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def tiny_tiff(path: Path, xmp: dict[str, str] | None = None, bits: int = 16) -> Path:
    """A small RGB TIFF, like one an editor writes, optionally with XMP."""
    dtype = np.uint16 if bits == 16 else np.uint8
    tifffile.imwrite(path, np.full((8, 12, 3), 7, dtype=dtype), photometric="rgb")
    if xmp:
        register_namespace()
        with pyexiv2.Image(str(path)) as image:
            image.modify_xmp(xmp)
    return path


def no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".part"]


def test_open_raw_writes_a_16_bit_tiff_beside_it_and_prints_its_path(raw: Path) -> None:
    result = hostplug("open", raw)
    assert result.exit_code == 0, result.stderr
    output = raw.with_name(f"{NAME}_hostplug.tif")
    assert result.stdout.strip() == str(output)
    with tifffile.TiffFile(output) as tif:
        page = tif.pages[0]
        assert page.bitspersample == 16 and page.shape == (600, 900, 3)
    provenance = read_provenance(output)
    assert provenance.sha256 == file_sha256(raw.resolve()) and provenance.names == (raw.name,)
    no_leftovers(raw.parent)


def test_open_raw_never_replaces_an_unrelated_file_but_replaces_its_own_render(raw: Path) -> None:
    unrelated = raw.with_name(f"{NAME}_hostplug.tif")
    unrelated.write_bytes(b"somebody else's file")
    first = open_json(raw)
    assert first["output"] == str(raw.with_name(f"{NAME}_hostplug-2.tif")) and first["mode"] == "render"
    assert unrelated.read_bytes() == b"somebody else's file"
    second = open_json(raw, "--exposure", "0.5")
    assert second["output"] == first["output"]
    assert read_provenance(Path(second["output"])).recipe.exposure == 0.5
    assert {"recipe", "timings", "seconds", "source"} <= set(second)


def test_open_stamps_its_tiff_newer_than_the_file_it_replaces(raw: Path) -> None:
    # the stamp was the time before the render: within the second an editor wrote, which it may not see as a change
    first = Path(open_json(raw)["output"])
    ahead = int(first.stat().st_mtime) + 30  # the file's time runs ahead of this clock (a share's server, say)
    register_namespace()
    with pyexiv2.Image(str(first)) as image:
        image.modify_xmp({"Xmp.hostplug.written": str(ahead)})  # unchanged since open wrote it
    os.utime(first, (ahead, ahead))
    assert open_json(raw)["output"] == str(first) and first.stat().st_mtime >= ahead + 1


def test_open_raw_again_keeps_a_render_that_was_retouched_since(raw: Path) -> None:
    first = Path(open_json(raw)["output"])
    assert open_json(raw)["output"] == str(first)  # unchanged since: replaced by the new render
    retouched = first.read_bytes()
    later = first.stat().st_mtime + 60
    os.utime(first, (later, later))  # an editor saved its retouch over it
    second = open_json(raw)
    assert second["output"] == str(raw.with_name(f"{NAME}_hostplug-2.tif"))
    assert first.read_bytes() == retouched


def test_open_raw_again_keeps_a_render_retouched_while_it_rendered(raw: Path) -> None:
    # open checked the render before rendering again; an editor saving over it in the seconds that took lost the
    # retouch
    from hostplug.handoff import open_file

    first = Path(open_json(raw)["output"])
    saved: list[bytes] = []

    def progress(_stage: str, index: int, count: int) -> None:
        if index == count - 1 and not saved:
            later = first.stat().st_mtime + 60
            os.utime(first, (later, later))  # the editor saves its retouch while the last stage runs
            saved.append(first.read_bytes())

    second = open_file(raw, progress=progress)
    assert saved and first.read_bytes() == saved[0]
    assert second["output"] == str(raw.with_name(f"{NAME}_hostplug-2.tif"))
    assert sorted(p.name for p in raw.parent.iterdir()) == sorted([raw.name, first.name, f"{NAME}_hostplug-2.tif"])


def test_open_raw_again_keeps_a_retouch_exported_without_our_record_while_it_rendered(raw: Path) -> None:
    # GIMP's TIFF export writes no XMP: the re-check, which read only the record's time, took it for untouched
    from hostplug.handoff import open_file

    first = Path(open_json(raw)["output"])
    saved: list[bytes] = []

    def progress(_stage: str, index: int, count: int) -> None:
        if index == count - 1 and not saved:
            tifffile.imwrite(first, np.full((8, 12, 3), 500, np.uint16), photometric="rgb")  # GIMP exports over it
            saved.append(first.read_bytes())

    open_file(raw, progress=progress)
    assert saved and first.read_bytes() == saved[0]


def test_an_own_output_opened_again_takes_the_sidecars_rating_not_its_old_one(raw: Path) -> None:
    # only an editor's image keeps its own metadata; an output of ours takes the sidecar's, as before
    sidecar = raw.with_name(raw.name + ".xmp")
    assert hostplug("edit", raw, "--exposure", "0.1").exit_code == 0
    sidecar.write_text(sidecar.read_text().replace("<rdf:Description", '<rdf:Description xmlns:xmp='
                                                   '"http://ns.adobe.com/xap/1.0/" xmp:Rating="2"', 1))
    output = Path(open_json(raw)["output"])
    assert read_provenance(output).sha256 and _rating(output) == "2"
    sidecar.write_text(sidecar.read_text().replace('xmp:Rating="2"', 'xmp:Rating="5"'))
    assert open_json(output)["output"] == str(output)
    assert _rating(output) == "5"


def test_a_render_output_opened_again_takes_the_sidecars_rating_and_keeps_its_other_metadata(raw: Path) -> None:
    # a reviewer: kept whole, a render output's old rating won over the sidecar's new one; dropped whole (before), a
    # copyright a catalogue wrote into it was lost
    sidecar = raw.with_name(raw.name + ".xmp")
    assert hostplug("edit", raw, "--exposure", "0.1").exit_code == 0
    sidecar.write_text(sidecar.read_text().replace("<rdf:Description", '<rdf:Description xmlns:xmp='
                                                   '"http://ns.adobe.com/xap/1.0/" xmp:Rating="2"', 1))
    output = raw.with_name(f"{NAME}.tif")
    assert hostplug("render", raw, "-o", output, "--long-edge", "200", "--no-service").exit_code == 0
    with pyexiv2.Image(str(output)) as image:
        image.modify_exif({"Exif.Image.Copyright": "(c) Studio X"})
    sidecar.write_text(sidecar.read_text().replace('xmp:Rating="2"', 'xmp:Rating="5"'))
    assert open_json(output)["output"] == str(output)
    with pyexiv2.Image(str(output)) as image:
        assert image.read_exif()["Exif.Image.Copyright"] == "(c) Studio X"
    assert _rating(output) == "5"


def test_open_never_renders_over_a_render_output_retouched_with_our_record_kept(raw: Path) -> None:
    # a tester's: a `hostplug render` output records no write time; retouched in an editor that keeps the XMP, it
    # counted as untouched and `open` rendered over the retouch, exit 0
    output = raw.with_name("print.tif")
    assert hostplug("render", raw, "-o", output, "--long-edge", "200", "--no-service").exit_code == 0
    pixels = tifffile.imread(output)
    pixels[:50, :50] = 0
    tifffile.imwrite(output.with_name("retouch.tif"), pixels)  # the retouch, then our metadata kept on it
    with pyexiv2.Image(str(output)) as image:
        xmp = image.read_raw_xmp()
    with pyexiv2.Image(str(output.with_name("retouch.tif"))) as image:
        image.modify_raw_xmp(xmp)
        image.modify_exif({"Exif.Image.Software": "hostplug 0.1.0"})  # an editor that keeps every tag
    os.replace(output.with_name("retouch.tif"), output)
    os.utime(output, (output.stat().st_mtime - 86400,) * 2)  # saved a day ago
    retouched = output.read_bytes()
    result = hostplug("open", output)
    assert result.exit_code == 5 and "records no time it was written" in result.stderr
    assert len(error_lines(result.stderr)) == 1 and f"hostplug rerender {shlex.quote(str(output))}" in result.stderr
    assert output.read_bytes() == retouched


def _rating(image: Path) -> str:
    with pyexiv2.Image(str(image)) as opened:
        return opened.read_xmp().get("Xmp.xmp.Rating", "")


def test_open_refuses_an_output_of_a_newer_hostplug_and_keeps_it(raw: Path) -> None:
    # open read the newer recipe as none, and rendered the output again in place with the defaults: its edits gone
    first = Path(open_json(raw, "--style", "warm", "--exposure", "0.7", "--no-service")["output"])
    register_namespace()
    with pyexiv2.Image(str(first)) as image:
        recorded = json.loads(image.read_xmp()["Xmp.hostplug.recipe"])
        image.modify_xmp({"Xmp.hostplug.recipe": json.dumps({**recorded, "version": 99})})
    before = first.read_bytes()
    result = hostplug("open", first, "--no-service")
    assert result.exit_code == 4
    newer = f"recipe version 99 is newer than this hostplug understands (up to {RECIPE_VERSION}); upgrade hostplug"
    assert error_lines(result.stderr) == [f"hostplug: error: {first}: its recorded recipe cannot be used: {newer}; "
                                          "it is left as it is"]
    assert first.read_bytes() == before


def test_open_raw_again_replaces_its_render_made_before_write_times_were_recorded(raw: Path) -> None:
    first = Path(open_json(raw)["output"])
    register_namespace()
    with pyexiv2.Image(str(first)) as image:
        image.modify_xmp({"Xmp.hostplug.written": None})  # as every render written before today
    later = first.stat().st_mtime + 60
    os.utime(first, (later, later))
    assert open_json(raw)["output"] == str(first)  # replaced as it always was, not kept beside a -2


def test_open_leaves_the_camera_jpeg_of_a_raw_jpeg_pair_alone(raw: Path) -> None:
    import cv2

    camera = raw.with_suffix(".jpg")
    cv2.imwrite(str(camera), np.full((60, 90, 3), 100, np.uint8))
    before = camera.read_bytes()
    result = hostplug("open", camera)
    assert result.exit_code == 5 and "records no raw it was rendered from" in result.stderr
    assert camera.read_bytes() == before and sorted(p.name for p in raw.parent.iterdir()) == sorted(
        [raw.name, camera.name])


def test_open_rerenders_an_editors_tiff_in_place_found_by_name(raw: Path) -> None:
    edit = tiny_tiff(raw.with_name(f"{NAME}-Edit.tif"))  # what Lightroom's "Edit in" hands over: no hostplug XMP
    result = open_json(edit)
    assert result["output"] == str(edit) and result["mode"] == "rerender"
    assert Path(result["source"]) == raw
    with tifffile.TiffFile(edit) as tif:
        assert tif.pages[0].bitspersample == 16 and tif.pages[0].shape == (600, 900, 3)
    assert read_provenance(edit).sha256 == file_sha256(raw.resolve())
    assert sorted(p.name for p in raw.parent.iterdir()) == sorted([raw.name, edit.name])


def test_open_keeps_the_size_quality_and_compression_of_a_hostplug_output_it_renders_again(raw: Path) -> None:
    from PIL import Image

    web = raw.with_name(f"{NAME}-Edit.jpg")
    assert hostplug("render", raw, "-o", web, "--long-edge", 400, "--quality", 70, "--no-service").exit_code == 0
    master = raw.with_name(f"{NAME}-Edit.tif")
    assert hostplug("render", raw, "-o", master, "--compression", "deflate", "--no-service").exit_code == 0
    assert open_json(web, "--exposure", "0.5")["mode"] == "rerender"
    with Image.open(web) as image:  # the editor reloads the file it has open: the same size, the same quality
        assert image.size == (400, 267) and image.quantization[0][:2] == [10, 7]
    open_json(master, "--exposure", "0.5")
    with tifffile.TiffFile(master) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE and tif.pages[0].shape == (600, 900, 3)


def test_open_renders_a_hostplug_output_whose_record_of_decisions_is_damaged(raw: Path) -> None:
    edit = raw.with_name(f"{NAME}-Edit.tif")
    assert hostplug("render", raw, "-o", edit, "--long-edge", 300, "--no-service").exit_code == 0
    register_namespace()
    with pyexiv2.Image(str(edit)) as image:
        image.modify_xmp({"Xmp.hostplug.decided": "{damaged"})  # its size is no longer known: rendered whole
    assert open_json(edit)["mode"] == "rerender"
    with tifffile.TiffFile(edit) as tif:
        assert tif.pages[0].shape == (600, 900, 3)


def test_open_never_renders_over_its_tiff_retouched_since_it_wrote_it(raw: Path) -> None:
    # opening the TIFF itself (an editor handing it back) re-rendered it in place and the retouch was lost
    image = raw.with_name(f"{NAME}_hostplug.tif")
    open_json(raw)
    assert open_json(image)["output"] == str(image)  # unchanged since: rendered again in place
    later = image.stat().st_mtime + 60
    os.utime(image, (later, later))  # an editor saved its retouch over it
    retouched = image.read_bytes()
    result = hostplug("open", image)
    assert result.exit_code == 5 and error_lines(result.stderr) == [
        f"hostplug: error: {image} was changed since hostplug wrote it (retouched in an editor?); it is kept as "
        f"it is: open the raw for a new render beside it (hostplug open '{raw}')"]
    assert image.read_bytes() == retouched
    no_leftovers(raw.parent)


def test_open_never_renders_over_its_tiff_saved_over_without_hostplugs_record(raw: Path) -> None:
    # GIMP's TIFF export writes no XMP: the retouch lost the write time, which used to count as "untouched"
    image = Path(open_json(raw)["output"])
    tifffile.imwrite(image, np.zeros((600, 900, 3), np.uint16), photometric="rgb")
    retouched = image.read_bytes()
    result = hostplug("open", image)
    assert result.exit_code == 5 and "no longer carries hostplug's record" in result.stderr
    assert f"(hostplug open '{raw}')" in result.stderr  # quoted: the name has spaces
    assert image.read_bytes() == retouched


@pytest.mark.parametrize("name", [f"{NAME}.tif", f"{NAME} copy.tif", f"{NAME} (2).tif"])
def test_open_leaves_a_tiff_named_like_the_raw_but_recording_nothing_alone(raw: Path, name: str) -> None:
    # an export or a Finder copy of a finished retouch, not an editor's hand-over: it was rendered over
    mine = tiny_tiff(raw.with_name(name))
    yesterday = mine.stat().st_mtime - 86400
    os.utime(mine, (yesterday, yesterday))
    before = mine.read_bytes()
    result = hostplug("open", mine)
    assert result.exit_code == 5 and "not named as an editor hands a render over" in result.stderr
    assert mine.read_bytes() == before


@pytest.mark.parametrize("suffix", [".tif", ".jpg"])
def test_open_leaves_an_older_export_of_another_program_alone_though_it_records_its_raw(raw: Path, suffix: str,
                                                                                         tmp_path: Path) -> None:
    # darktable writes xmpMM:DerivedFrom into every export: its year-old export was rendered over in place
    exported = raw.parent / "darktable_exported" / f"{NAME}{suffix}"
    exported.parent.mkdir()
    if suffix == ".tif":
        tiny_tiff(exported, {"Xmp.xmpMM.DerivedFrom": raw.name})
    else:
        cv2.imwrite(str(exported), np.full((8, 12, 3), 90, np.uint8))
        register_namespace()
        with pyexiv2.Image(str(exported)) as image:
            image.modify_xmp({"Xmp.xmpMM.DerivedFrom": raw.name})
    last_year = exported.stat().st_mtime - 365 * 86400
    os.utime(exported, (last_year, last_year))
    before = exported.read_bytes()
    result = hostplug("open", exported, "--search", raw.parent)
    assert result.exit_code == 5 and "was not rendered by hostplug" in result.stderr
    assert exported.read_bytes() == before


@pytest.mark.parametrize("mark", [{"Xmp.darktable.history": ""}, {"Xmp.xmp.CreatorTool": "darktable 4.2.1"}])
def test_open_leaves_a_fresh_darktable_export_alone(raw: Path, mark: dict[str, str]) -> None:
    # an export beside the raw written a minute ago passed for an editor's hand-over and was rendered over; a
    # tester's exported without its develop history (an export setting) still was
    exported = tiny_tiff(raw.with_name(f"{NAME}.tif"), {"Xmp.xmpMM.DerivedFrom": raw.name, **mark})
    before = exported.read_bytes()
    result = hostplug("open", exported)
    assert result.exit_code == 5 and "is a darktable export" in result.stderr
    assert exported.read_bytes() == before


def test_open_keeps_what_the_editor_wrote_into_the_tiff_it_hands_over(raw: Path) -> None:
    # Lightroom's -Edit.tif carries the catalogue's copyright, keywords, rating and GPS: rendered again in place,
    # they were all gone
    handed = tiny_tiff(raw.with_name(f"{NAME}-Edit.tif"), {"Xmp.dc.subject": ["client-b"], "Xmp.xmp.Rating": "5"})
    with pyexiv2.Image(str(handed)) as image:
        image.modify_exif({"Exif.Image.Copyright": "(c) Studio X", "Exif.GPSInfo.GPSLatitudeRef": "N",
                           "Exif.GPSInfo.GPSLatitude": "48/1 51/1 3024/100"})
    assert open_json(handed)["output"] == str(handed)
    with pyexiv2.Image(str(handed)) as image:
        xmp, exif = image.read_xmp(), image.read_exif()
    assert xmp["Xmp.dc.subject"] == ["client-b"] and xmp["Xmp.xmp.Rating"] == "5" and "Xmp.hostplug.recipe" in xmp
    assert exif["Exif.Image.Copyright"] == "(c) Studio X" and exif["Exif.GPSInfo.GPSLatitude"] == "48/1 51/1 3024/100"
    # handed over again (Lightroom's "Edit Original"), after the catalogue changed the rating: a tester's second
    # hand-over dropped all of it, since the TIFF then carried hostplug's record
    with pyexiv2.Image(str(handed)) as image:
        image.modify_xmp({"Xmp.xmp.Rating": "4"})
    assert open_json(handed, "--exposure", "0.5")["output"] == str(handed)
    with pyexiv2.Image(str(handed)) as image:
        xmp, exif = image.read_xmp(), image.read_exif()
    assert xmp["Xmp.dc.subject"] == ["client-b"] and xmp["Xmp.xmp.Rating"] == "4"
    assert exif["Exif.Image.Copyright"] == "(c) Studio X" and exif["Exif.GPSInfo.GPSLatitude"] == "48/1 51/1 3024/100"
    assert '"exposure": 0.5' in xmp["Xmp.hostplug.recipe"] or '"exposure":0.5' in xmp["Xmp.hostplug.recipe"]


def test_open_rerenders_a_tiff_an_editor_has_just_handed_over_under_the_raws_name(raw: Path) -> None:
    # RawTherapee's and Capture One's hand-over keeps the raw's name and records no raw; they write it just before
    handed = tiny_tiff(raw.with_name(f"{NAME}.tif"))
    assert open_json(handed)["output"] == str(handed)


def test_a_lightroom_tiff_of_a_raw_named_with_hostplug_in_it_is_no_render_of_opens_own(tmp_path: Path,
                                                                                          sample_dng: Path) -> None:
    raw = Path(shutil.copy(sample_dng, tmp_path / "trip_hostplug_day1.dng"))
    edit = tiny_tiff(tmp_path / "trip_hostplug_day1-Edit.tif", {"Xmp.crs.RawFileName": raw.name})
    assert open_json(edit)["output"] == str(edit)  # it was refused as "changed since hostplug wrote it"


def test_an_editors_tiff_is_rendered_again_in_place_after_its_editor_wrote_metadata_into_it(raw: Path) -> None:
    # Lightroom writes metadata (a rating) into its -Edit.tif, which moves the file's time: no retouch
    edit = tiny_tiff(raw.with_name(f"{NAME}-Edit.tif"))
    first = open_json(edit)
    os.utime(edit)  # Lightroom wrote a rating into it
    assert open_json(edit)["output"] == first["output"] == str(edit)


def test_open_rerender_uses_the_raws_sidecar_recipe(raw: Path) -> None:
    assert hostplug("edit", raw, "--exposure", "0.7").exit_code == 0
    edit = tiny_tiff(raw.with_name(f"{NAME}-Edit-2.tif"), bits=8)
    result = open_json(edit)
    assert result["recipe"]["exposure"] == 0.7 and result["bits"] == 8
    with tifffile.TiffFile(edit) as tif:
        assert tif.pages[0].bitspersample == 8  # the editor asked for 8 bits: it keeps them


def test_an_editors_compressed_tiff_stays_compressed_when_rendered_again_in_place(raw: Path) -> None:
    # a tester's LZW -Edit.tif came back uncompressed, 55 % larger
    edit = raw.with_name(f"{NAME}-Edit.tif")
    tifffile.imwrite(edit, np.full((8, 12, 3), 7, dtype=np.uint8), photometric="rgb", compression="lzw")
    assert open_json(edit)["output"] == str(edit)
    with tifffile.TiffFile(edit) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE and tif.pages[0].bitspersample == 8


def test_find_source_by_recorded_hash_after_both_were_renamed(tmp_path: Path, sample_dng: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    moved = Path(shutil.copy(sample_dng, library / "renamed raw.dng"))
    (tmp_path / "other.dng").write_bytes(b"not the raw")
    output = tiny_tiff(tmp_path / "final print.tif", {
        "Xmp.xmpMM.DerivedFrom": "IMG_9999.dng",
        "Xmp.hostplug.sourcePath": "/nowhere/IMG_9999.dng",
        "Xmp.hostplug.sourceSHA256": file_sha256(sample_dng.resolve()),
    })
    found = find_source(output, [library])
    assert found == moved.resolve()


def test_find_source_checks_the_recorded_hash(tmp_path: Path) -> None:
    (tmp_path / "IMG_0001.CR2").write_bytes(b"a different raw with the same name")
    output = tiny_tiff(tmp_path / "IMG_0001-Edit.tif", {
        "Xmp.xmpMM.DerivedFrom": "IMG_0001.CR2",
        "Xmp.hostplug.sourceSHA256": "0" * 64,
    })
    with pytest.raises(InputNotFoundError, match="IMG_0001.CR2 is not the raw it was rendered from"):
        find_source(output, [])


def test_find_source_reads_lightrooms_raw_file_name(tmp_path: Path) -> None:
    raw = tmp_path / "DSC_1234.NEF"
    raw.write_bytes(b"raw")
    output = tiny_tiff(tmp_path / "Exported from Lightroom.tif", {"Xmp.crs.RawFileName": "DSC_1234.NEF"})
    assert find_source(output, []) == raw


def test_editor_suffixes_are_taken_off_to_find_the_raw_name() -> None:
    assert stem_candidates("IMG_0001-Edit-2.tif")[-1] == "IMG_0001"
    assert stem_candidates("IMG_0001_hostplug.tif")[-1] == "IMG_0001"
    assert stem_candidates("IMG_0001 copy.tiff")[-1] == "IMG_0001"
    assert stem_candidates("IMG_0001.tif") == ["IMG_0001"]


def test_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = hostplug("open", tmp_path / "nowhere é.CR3")
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [f"hostplug: error: {tmp_path / 'nowhere é.CR3'}: no such file"]


def test_undecodable_raw_writes_nothing(tmp_path: Path, sample_dng: Path) -> None:
    broken = tmp_path / "broken raw.dng"
    broken.write_bytes(sample_dng.read_bytes()[:4096])
    result = hostplug("open", broken)
    assert result.exit_code != 0 and result.stdout == ""
    assert len(error_lines(result.stderr)) == 1 and error_lines(result.stderr)[0].startswith("hostplug: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken raw.dng"]


def test_tiff_without_a_findable_raw_is_left_untouched(tmp_path: Path) -> None:
    edit = tiny_tiff(tmp_path / "orphan-Edit.tif")
    before = edit.read_bytes()
    result = hostplug("open", edit)
    assert result.exit_code == 2
    assert "cannot find its source raw" in result.stderr and len(error_lines(result.stderr)) == 1
    assert edit.read_bytes() == before


def test_a_file_that_is_no_image_is_refused(tmp_path: Path, sample_dng: Path) -> None:
    shutil.copy(sample_dng, tmp_path / "IMG_0002.dng")
    fake = tmp_path / "IMG_0002-Edit.tif"
    fake.write_text("not a tiff")
    result = hostplug("open", fake)
    assert result.exit_code == 3  # the input is unsupported; no output failed to be written (5)
    assert error_lines(result.stderr) == [f"hostplug: error: {fake}: not a TIFF, PNG or JPEG file"]
    assert fake.read_text() == "not a tiff"


@pytest.mark.parametrize(("name", "content", "words"), [
    ("IMG_0002-Edit.tif", b"II*\x00" + b"\xff" * 40, "the TIFF file is damaged or truncated"),
    ("IMG_0002-Edit.png", b"\x89PNG\r\n\x1a\n", "the PNG file is truncated"),
])
def test_a_truncated_image_is_one_line_not_a_traceback(tmp_path: Path, sample_dng: Path, name: str,
                                                       content: bytes, words: str) -> None:
    shutil.copy(sample_dng, tmp_path / "IMG_0002.dng")
    fake = tmp_path / name
    fake.write_bytes(content)
    result = hostplug("open", fake)
    assert result.exit_code == 3
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"hostplug: error: {fake}: {words}"), line
    assert fake.read_bytes() == content


def test_thumbnail_is_fast_and_gives_the_full_size(tmp_path: Path, raw: Path) -> None:
    output = tmp_path / "thumb é.jpg"
    done = subprocess.run([sys.executable, "-m", "hostplug.thumbnail", str(raw), str(output), "128"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (info["width"], info["height"]) == (900, 600)
    from PIL import Image

    with Image.open(output) as image:
        assert max(image.size) <= 128


def test_thumbnail_of_a_non_raw_is_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "fake.cr2"
    fake.write_text("hello")
    result = hostplug("thumbnail", fake, "-o", tmp_path / "t.jpg")
    assert result.exit_code != 0 and len(error_lines(result.stderr)) == 1
    assert not (tmp_path / "t.jpg").exists()


def test_thumbnail_never_replaces_its_raw_and_asks_before_replacing_a_file(tmp_path: Path, raw: Path) -> None:
    before = raw.read_bytes()
    for target in (raw, raw.with_suffix(".png")):  # the raw itself; a name that says another format
        result = hostplug("thumbnail", raw, "-o", target, "--overwrite")
        assert result.exit_code == 2 and len(error_lines(result.stderr)) == 1  # named as no JPEG: a wrong option
    link = tmp_path / "link.jpg"
    link.symlink_to(raw)
    result = hostplug("thumbnail", raw, "-o", link, "--overwrite")
    assert result.exit_code == 5 and "is the raw itself" in result.stderr
    assert raw.read_bytes() == before and not raw.with_suffix(".png").exists()
    camera = tmp_path / "camera.jpg"
    camera.write_bytes(b"the camera's own JPEG")
    result = hostplug("thumbnail", raw, "-o", camera)
    assert result.exit_code == 5 and "pass --overwrite" in result.stderr
    assert camera.read_bytes() == b"the camera's own JPEG"
    assert hostplug("thumbnail", raw, "-o", camera, "--overwrite").exit_code == 0
    missing = hostplug("thumbnail", tmp_path / "nothere.dng", "-o", tmp_path / "n.jpg")
    assert missing.exit_code == 2
    assert error_lines(missing.stderr) == [f"hostplug: error: {tmp_path}/nothere.dng: no such file"]


def test_two_opens_of_one_raw_at_once_both_open_its_render(raw: Path) -> None:
    # an editor's double click: the second open found the first's render written meanwhile and said "pass
    # --overwrite", an option open does not have
    command = [sys.executable, "-c", "from hostplug.cli import main; main()", "open", "--no-service", str(raw)]
    opens = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in opens]  # type: ignore[union-attr]
    render = str(raw.with_name(f"{NAME}_hostplug.tif"))
    assert [(code, out.splitlines()) for code, out, _ in done] == [(0, [render])] * 2, done
    no_leftovers(raw.parent)


def test_open_in_a_folder_it_cannot_write_says_what_to_do(raw: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hostplug import handoff

    real = os.access
    monkeypatch.setattr(handoff.os, "access", lambda path, mode: mode != os.W_OK and real(path, mode))  # a card
    result = hostplug("open", raw, "--no-service")
    assert result.exit_code == 5
    assert error_lines(result.stderr) == [
        f"hostplug: error: cannot write {raw.with_name(f'{NAME}_hostplug.tif')}: folder {raw.parent} is not "
        "writable (a memory card, a read-only share?); copy the raw to a folder you can write to, or render it "
        f"elsewhere: hostplug render '{raw}' -o OUT.tif"]


def test_open_as_a_process_prints_only_the_path(raw: Path) -> None:
    done = hostplug_process("open", raw)  # how an editor calls it
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(raw.with_name(f"{NAME}_hostplug.tif"))]


def test_open_says_what_it_writes_while_it_writes_it(raw: Path) -> None:
    # the render service records it, so a service killed mid-write has the partial file removed at its next start
    from contextlib import contextmanager

    from hostplug.handoff import open_file

    recorded: list[tuple[str, bool]] = []

    @contextmanager
    def writing(output: str):
        recorded.append((output, Path(output).exists()))
        yield

    result = open_file(raw, writing=writing)
    assert recorded == [(result["output"], False)] and Path(result["output"]).is_file()


def test_open_of_a_jpeg_only_shot_says_it_takes_a_raw_and_how_to_render_the_image(tmp_path: Path) -> None:
    # a tester's JPEG-only shot was sent to look for its raw with --search, which could never help
    from PIL import Image

    jpeg = tmp_path / "Été IMG_0005.jpg"
    Image.new("RGB", (64, 48), (120, 90, 60)).save(jpeg)
    result = hostplug("open", jpeg)
    assert result.exit_code == 2
    (line,) = error_lines(result.stderr)
    assert "open takes a raw, or an editor's render of one" in line
    assert line.endswith(f"hostplug render '{jpeg}' -o '{tmp_path / 'Été IMG_0005_rendered.tif'}'")
    assert sorted(p.name for p in tmp_path.iterdir()) == [jpeg.name]


def test_open_says_that_a_crop_set_in_another_program_is_not_applied(raw: Path) -> None:
    """A reviewer's: render said so, open (the photographer's way in from an editor) did not."""
    raw.with_name(raw.stem + ".xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" crs:HasCrop="True"/>'
        '</rdf:RDF></x:xmpmeta>')
    result = hostplug("open", raw)
    assert result.exit_code == 0, result.output
    assert "the crop set in Lightroom/Camera Raw" in result.stderr and "is not applied" in result.stderr


def test_open_json_names_the_file_given_as_its_input_and_the_raw_as_its_source(raw: Path) -> None:
    # a tester's: for a handed-back TIFF "input" was the raw, so the argument appeared only as "output"
    image = Path(open_json(raw)["output"])
    again = open_json(image)
    assert (again["input"], again["source"], again["output"]) == (str(image), str(raw), str(image))


def test_open_raw_again_keeps_an_old_render_that_records_no_write_time(raw: Path) -> None:
    # a reviewer's: refused when the TIFF was opened, the same day-old TIFF without a stamp (an older version's)
    # was still rendered over when its raw was opened
    image = Path(open_json(raw)["output"])
    with pyexiv2.Image(str(image)) as opened:
        opened.modify_xmp({"Xmp.hostplug.written": None})
    os.utime(image, (image.stat().st_mtime - 86400,) * 2)
    kept = image.read_bytes()
    assert open_json(raw)["output"] == str(image.with_name(f"{NAME}_hostplug-2.tif"))
    assert image.read_bytes() == kept
    result = hostplug("open", image)
    assert result.exit_code == 5 and "records no time it was written" in result.stderr
    assert f"open the raw for a new render beside it (hostplug open {shlex.quote(str(raw))})" in result.stderr


def test_open_never_renders_over_an_editor_s_export_that_kept_our_record(raw: Path) -> None:
    # a tester's: GIMP exports keep hostplug's XMP by default; opened within two minutes, a fresh retouched export
    # counted as hostplug's render and was rendered over, exit 0
    export = raw.with_name("retouched.tif")
    assert hostplug("render", raw, "-o", export, "--long-edge", "200", "--no-service").exit_code == 0
    with pyexiv2.Image(str(export)) as image:
        image.modify_exif({"Exif.Image.Software": "GIMP 3.0.4"})
    kept = export.read_bytes()
    result = hostplug("open", export)
    assert result.exit_code == 5 and error_lines(result.stderr) == [
        f"hostplug: error: {export} was saved by GIMP 3.0.4, not by hostplug (an editor's export keeps hostplug's "
        f"record); it is left as it is: open the raw for a new render (hostplug open {shlex.quote(str(raw))})"]
    assert export.read_bytes() == kept


def test_open_json_gives_a_failure_a_record_too(raw: Path) -> None:
    # a re-tester's: with --json a refused open printed nothing on stdout
    result = hostplug("open", raw.with_name("missing.dng"), "--json")
    assert result.exit_code == 2
    record = json.loads(result.stdout)
    assert record["input"] == str(raw.with_name("missing.dng")) and record["exit_code"] == 2 and record["error"]
