"""Bad inputs and unwritable outputs: one clear line each, a non-zero exit, nothing half-written, and in a batch
the good files still render."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import CorruptInputError
from tests.conftest import CANON, GOPRO, NIKON, SONY, error_lines, hostplug, hostplug_process, need


def names(folder: Path) -> list[str]:
    """Every name in a folder, hidden ``.part`` files included."""
    return sorted(os.listdir(folder))


def truncated_copy(source: Path, folder: Path, fraction: float = 0.5) -> Path:
    data = need(source).read_bytes()
    copy = folder / f"truncated_{source.name}"
    copy.write_bytes(data[: int(len(data) * fraction)])
    return copy


def assert_one_line_refusal(result, words: str, out_dir: Path, expected: list[str]) -> str:
    assert result.exit_code != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hostplug: error:") and words in lines[0].lower(), lines[0]
    assert names(out_dir) == expected  # no output, no .part left behind
    return lines[0]


def test_unsupported_gopro_raw_is_refused_in_one_line(tmp_path: Path) -> None:
    result = hostplug("render", need(GOPRO), "-o", tmp_path / "gopro.tif")
    line = assert_one_line_refusal(result, "unsupported", tmp_path, [])
    assert "VC-5" in line


def test_a_damaged_lossy_dng_is_called_damaged_not_unsupported(tmp_path: Path) -> None:
    # a fuzzer's Nikon D500 DNG with only its ImageLength changed was told to be converted with Adobe DNG Converter,
    # though this LibRaw decodes its undamaged self
    from tests.hostile_inputs import dng_with, longs

    tall = tmp_path / "tall.dng"
    tall.write_bytes(dng_with(raw={257: longs(300000)}, base=need(NIKON).read_bytes()))
    result = hostplug("info", tall)
    assert result.exit_code == 3
    assert error_lines(result.stderr) == [f"hostplug: error: {tall}: the file is truncated or damaged: LibRaw cannot "
                                          "decode its raw data (compression code 34892, which it reads in undamaged "
                                          "files)"]


def test_truncated_dng_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = truncated_copy(CANON, tmp_path)
    result = hostplug("render", bad, "-o", tmp_path / "out.tif")
    assert_one_line_refusal(result, "truncated", tmp_path, [bad.name])


def test_truncated_sony_arw_is_refused_in_one_line(tmp_path: Path) -> None:
    # LibRaw decodes half an ARW without an error and repeats its last row down to the bottom.
    bad = truncated_copy(SONY, tmp_path)
    result = hostplug("render", bad, "-o", tmp_path / "out.tif")
    assert_one_line_refusal(result, "truncated", tmp_path, [bad.name])


def test_show_and_edit_refuse_a_cut_arw_as_render_does(tmp_path: Path) -> None:
    # a tester's interrupted card copy: show said "renders with the defaults" and edit wrote a sidecar for it
    bad = truncated_copy(SONY, tmp_path, fraction=0.3)
    for command in (["show", bad], ["edit", bad, "--exposure", "1"]):
        result = hostplug(*command)
        assert result.exit_code == 3 and "the file is truncated" in error_lines(result.stderr)[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [bad.name]  # no sidecar
    assert hostplug("show", need(SONY)).exit_code == 0  # the whole file passes


@pytest.mark.parametrize("suffix", [".NEF", ".3FR"])
def test_a_compressed_raw_whose_count_is_its_uncompressed_size_is_not_called_truncated(tmp_path: Path,
                                                                                       suffix: str) -> None:
    # a reviewer: Hasselblad's 3FRs (exiftool's issue 476) count compressed data at its uncompressed size, more than
    # the file holds; show and edit would have refused healthy files that render
    import struct

    import tifffile

    from engine.io.dng import check_tiff_raw_complete

    raw = tmp_path / f"H4D{suffix}"
    sensor = np.random.default_rng(0).integers(0, 4096, (600, 800)).astype(np.uint16)  # compresses as a raw does
    tifffile.imwrite(raw, sensor, compression="zlib", rowsperstrip=600)
    with tifffile.TiffFile(raw) as tif:
        where = tif.pages[0].tags["StripByteCounts"].valueoffset
    data = bytearray(raw.read_bytes())
    struct.pack_into("<I", data, where, 600 * 800 * 2)
    raw.write_bytes(bytes(data))
    check_tiff_raw_complete(raw)  # no error
    raw.write_bytes(bytes(data[:200]))  # cut before its data: refused whatever its count
    if suffix != ".3FR":
        with pytest.raises(CorruptInputError, match="the file is truncated"):
            check_tiff_raw_complete(raw)


def test_a_raw_cut_before_its_pixels_is_refused_not_rendered_black(tmp_path: Path) -> None:
    # LibRaw decodes an ARW cut inside its header area without an error, as a sensor of zeros: that rendered to
    # an all-black TIFF with exit 0 (and a watch folder delivered it).
    bad = truncated_copy(SONY, tmp_path, fraction=0.01)
    result = hostplug("render", bad, "-o", tmp_path / "out.tif")
    assert result.exit_code == 3
    assert_one_line_refusal(result, "truncated", tmp_path, [bad.name])


@pytest.mark.parametrize("text", ["this is not a photograph\n" * 20, "hi\n"])
def test_text_file_named_like_a_raw_is_refused_in_one_line(tmp_path: Path, text: str) -> None:
    # a few bytes were "the raw data cannot be read ... truncated or damaged" (LibRaw read past their end), where
    # show and edit said what they are
    fake = tmp_path / "IMG_0001.CR2"
    fake.write_text(text)
    for command in (["render", fake, "-o", tmp_path / "out.tif"], ["info", fake]):
        assert_one_line_refusal(hostplug(*command), "not a raw format", tmp_path, [fake.name])


@pytest.mark.parametrize("name", ["holiday.jpg", "scan.png", "edit.tif"])
def test_a_file_named_like_an_image_that_is_none_says_so(tmp_path: Path, name: str) -> None:
    fake = tmp_path / name
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" if name.endswith(".png") else b"this is not a photograph\n" * 20)
    result = hostplug("render", fake, "-o", tmp_path / "out.tif")
    assert_one_line_refusal(result, "not an image format", tmp_path, [fake.name])  # not "raw data cannot be read"


def test_empty_file_is_refused_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "IMG_0002.NEF"
    empty.touch()
    result = hostplug("render", empty, "-o", tmp_path / "out.tif")
    assert_one_line_refusal(result, "empty", tmp_path, [empty.name])


def test_missing_input_is_refused_in_one_line(tmp_path: Path) -> None:
    result = hostplug("render", tmp_path / "nowhere.ARW", "-o", tmp_path / "out.tif")
    assert_one_line_refusal(result, "no such file", tmp_path, [])


def test_missing_output_folder_is_refused_in_one_line(tmp_path: Path, sample_dng: Path) -> None:
    result = hostplug("render", sample_dng, "-o", tmp_path / "no" / "such" / "out.tif")
    assert_one_line_refusal(result, "does not exist", tmp_path, [])
    (tmp_path / "blocker").write_text("a file, not a folder")
    result = hostplug("render", sample_dng, "--out-dir", tmp_path / "blocker" / "new")  # made only where it can be
    assert_one_line_refusal(result, "cannot make the output folder", tmp_path, ["blocker"])
    result = hostplug("render", sample_dng, "-o", tmp_path / "blocker" / "out.tif")  # "does not exist" it did
    assert_one_line_refusal(result, "folder " + str(tmp_path / "blocker") + " is not a folder", tmp_path, ["blocker"])


def test_output_under_a_regular_file_is_refused_in_one_line(tmp_path: Path, sample_dng: Path) -> None:
    # Tests may run as root, who can write into read-only folders; nobody can create a file inside a file.
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    result = hostplug("render", sample_dng, "-o", blocker / "out.tif")
    assert_one_line_refusal(result, "blocker", tmp_path, ["blocker"])
    assert blocker.read_text() == "a file, not a folder"


def test_existing_output_is_kept_without_overwrite(tmp_path: Path, sample_dng: Path) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"my earlier render")
    result = hostplug("render", sample_dng, "-o", out)
    assert_one_line_refusal(result, "--overwrite", tmp_path, ["out.png"])
    assert out.read_bytes() == b"my earlier render"
    result = hostplug("render", sample_dng, "-o", out, "--overwrite", "--long-edge", 100)
    assert result.exit_code == 0, result.stderr
    assert cv2.imread(str(out)).shape == (67, 100, 3)
    assert names(tmp_path) == ["out.png"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory, sample_dng: Path):
    """One real ``hostplug`` process rendering two good and five bad files (it also sees what LibRaw prints)."""
    folder = tmp_path_factory.mktemp("batch")
    inputs = folder / "in"
    inputs.mkdir()
    out = folder / "out"
    out.mkdir()
    good_raw = inputs / "good.dng"
    shutil.copyfile(sample_dng, good_raw)
    good_png = inputs / "good_photo.png"
    cv2.imwrite(str(good_png), np.full((30, 40, 3), (40, 120, 200), dtype=np.uint8))
    fake = inputs / "fake.CR2"
    fake.write_text("not a raw\n")
    bad = [truncated_copy(CANON, inputs), need(GOPRO), fake, inputs / "missing.ARW"]
    result = hostplug_process("render", good_raw, *bad, good_png, "--out-dir", out, "--long-edge", 120)
    return result, out, bad


def test_batch_renders_the_good_files_despite_bad_ones(batch) -> None:
    result, out, _ = batch
    assert names(out) == ["good.tif", "good_photo.tif"]
    assert result.returncode != 0


def test_batch_reports_exactly_one_line_per_bad_file_and_a_summary(batch) -> None:
    result, _, bad = batch
    lines = [line for line in error_lines(result.stderr) if not line.startswith("hostplug: note:")]  # (the 40 x 30
    assert len(lines) == len(bad) + 1, result.stderr  # photo is not enlarged to --long-edge 120: said in a note)
    for path, line in zip(bad, lines[:-1], strict=True):
        assert line.startswith("hostplug: error:") and path.name in line
    assert lines[-1] == f"hostplug: error: {len(bad)} of {len(bad) + 2} files failed"


def test_a_path_with_a_nul_character_is_one_error(sample_dng: Path, tmp_path: Path) -> None:
    import engine
    from engine.errors import InputNotFoundError, OutputError

    with pytest.raises(InputNotFoundError, match="NUL"):
        engine.open("IMG\0.dng")
    with pytest.raises(OutputError, match="NUL"):
        engine.render_file(sample_dng, tmp_path / "out\0.png")
    assert os.listdir(tmp_path) == []


def test_a_source_opened_by_a_relative_path_is_recorded_wherever_the_script_goes(
        sample_dng: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine

    (tmp_path / "shoot").mkdir()
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(sample_dng, tmp_path / "shoot" / "IMG_0001.dng")
    monkeypatch.chdir(tmp_path / "shoot")
    result = engine.render(engine.open("IMG_0001.dng"), preview=128)
    monkeypatch.chdir(tmp_path / "elsewhere")  # the output recorded /elsewhere/IMG_0001.dng as its raw
    engine.write_image(result, "out.png")
    again = engine.rerender_file("out.png", {"exposure": 0.5})
    assert again.source == tmp_path / "shoot" / "IMG_0001.dng"


@pytest.mark.parametrize("given", [".", "/", ""])
def test_a_folder_named_without_a_name_is_one_line(tmp_path: Path, given: str) -> None:
    # "." has no name: looking for its sidecar raised a ValueError traceback
    result = hostplug_process("render", given, "-o", tmp_path / "out.tif", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [f"hostplug: error: {given or '.'}: refused, the input is a folder, not a "
                                          "regular file"]


def test_the_thumbnail_of_an_undecodable_raw_says_why_as_a_render_does(tmp_path: Path) -> None:
    thumbnail = hostplug("thumbnail", need(GOPRO), "-o", tmp_path / "t.jpg")
    render = hostplug("render", need(GOPRO), "-o", tmp_path / "t.tif")
    assert error_lines(thumbnail.stderr) == error_lines(render.stderr)
    assert "VC-5 (GoPro) compression" in thumbnail.stderr


def test_a_thumbnail_named_other_than_jpeg_is_a_wrong_option(tmp_path: Path, sample_dng: Path) -> None:
    # exit 5 (an output that cannot be written), where render says 2 for a name of the wrong kind (a tester's)
    result = hostplug("thumbnail", sample_dng, "-o", tmp_path / "th.png")
    assert result.exit_code == 2 and error_lines(result.stderr) == [
        "hostplug: error: th.png: a thumbnail is a JPEG; name it th.jpg"]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", [["info"], ["show"], ["edit", "--exposure", "0.2"], ["rerender"], ["open"]])
def test_a_link_loop_or_a_fifo_is_named_for_what_it_is_and_the_batch_goes_on(
        tmp_path: Path, sample_dng: Path, command: list[str]) -> None:
    """A tester's: a symbolic link loop crashed info, show, edit and render with a traceback that stopped the
    batch; show, edit, open and rerender called a loop or a FIFO "no such file"."""
    (tmp_path / "a.dng").symlink_to(tmp_path / "b.dng")
    (tmp_path / "b.dng").symlink_to(tmp_path / "a.dng")
    os.mkfifo(tmp_path / "f.dng")
    for name, says in (("a.dng", "a symbolic link loop"), ("f.dng", "the input is a FIFO")):
        result = hostplug(*command, tmp_path / name)
        assert result.exit_code in (2, 3), result.output
        assert len(error_lines(result.stderr)) == 1 and says in result.stderr, result.stderr
    if command[0] in ("info", "show"):  # batch commands: the good file is still done
        good = Path(shutil.copy(sample_dng, tmp_path / "good.dng"))
        result = hostplug(*command, tmp_path / "a.dng", good)
        assert "good.dng" in result.stdout and "1 of 2 files failed" in result.stderr


def test_a_newline_in_a_files_name_keeps_its_error_on_one_line(tmp_path: Path) -> None:
    """A tester's: a name with a newline split the error in two lines; an escape sequence was dropped."""
    junk = tmp_path / "bad\nname\x1b[2J.dng"
    junk.write_bytes(b"junk")
    result = hostplug("info", junk)
    assert result.exit_code != 0 and len(result.stderr.splitlines()) == 1
    assert "bad\\nname\\x1b[2J.dng: " in result.stderr


def test_a_render_batch_with_a_link_loop_renders_the_others(tmp_path: Path, sample_dng: Path) -> None:
    (tmp_path / "a.dng").symlink_to(tmp_path / "b.dng")
    (tmp_path / "b.dng").symlink_to(tmp_path / "a.dng")
    good = Path(shutil.copy(sample_dng, tmp_path / "good.dng"))
    result = hostplug("render", tmp_path / "a.dng", good, "--out-dir", tmp_path / "out", "--long-edge", "64",
                      "--format", "jpeg")
    assert result.exit_code != 0 and "a symbolic link loop" in result.stderr and "Traceback" not in result.output
    assert (tmp_path / "out" / "good.jpg").exists() and "1 of 2 files failed" in result.stderr
