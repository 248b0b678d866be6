"""Writing outputs: real 16-bit data, embedded profiles, carried metadata, resizing and atomic replacement."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pyexiv2
import pytest
import tifffile
from PIL import Image, ImageCms

import engine.output.write
from engine.colour import SPACES
from engine.errors import OutputError
from engine.output.icc import icc_profile
from engine.output.metadata import exiv2_xmp, read_exif
from engine.output.write import OutputOptions, write_image
from tests.conftest import read_metadata

RAWSAMPLES = Path(__file__).resolve().parents[2] / "shared" / "rawsamples"


def gradient(height: int = 16, width: int = 1024) -> np.ndarray:
    """A horizontal grey ramp from 0 to 1, slightly overshooting at both ends as renders may."""
    ramp = np.linspace(-0.01, 1.01, width, dtype=np.float32)
    return np.repeat(np.tile(ramp, (height, 1))[..., None], 3, axis=2)


def colour_patch() -> np.ndarray:
    """Random in-range colours, reproducible."""
    return np.random.default_rng(1).random((24, 32, 3), dtype=np.float32)


def files_in(folder: Path) -> list[str]:
    """Every name in a folder, hidden ones included."""
    return sorted(os.listdir(folder))


def test_16_bit_tiff_holds_every_level_of_a_gradient(tmp_path: Path) -> None:
    pixels = gradient()
    path = write_image(pixels, tmp_path / "ramp.tif")
    data = tifffile.imread(path)
    assert data.dtype == np.uint16 and data.shape == pixels.shape
    assert len(np.unique(data)) > 256
    assert np.abs(data / 65535 - np.clip(pixels, 0, 1)).max() <= 1 / 65535


def test_16_bit_png_holds_every_level_of_a_gradient(tmp_path: Path) -> None:
    pixels = gradient()
    pixels[..., 0] *= 0.5  # tells the channel order apart
    data = cv2.imread(str(write_image(pixels, tmp_path / "ramp.png")), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert data.dtype == np.uint16 and len(np.unique(data)) > 256
    assert np.abs(data / 65535 - np.clip(pixels, 0, 1)).max() <= 1 / 65535


def test_8_bit_png_and_tiff_on_request(tmp_path: Path) -> None:
    options = OutputOptions(bits=8)
    assert tifffile.imread(write_image(gradient(), tmp_path / "a.tif", options)).dtype == np.uint8
    assert cv2.imread(str(write_image(gradient(), tmp_path / "a.png", options)), -1).dtype == np.uint8


def test_jpeg_quality_is_honoured(tmp_path: Path) -> None:
    pixels = colour_patch()
    low = write_image(pixels, tmp_path / "low.jpg", OutputOptions(quality=30))
    high = write_image(pixels, tmp_path / "high.jpg", OutputOptions(quality=98))
    assert low.stat().st_size < high.stat().st_size
    error = np.abs(np.asarray(Image.open(high)) / 255 - pixels).mean()
    assert error < 0.02


def test_jpeg_refuses_16_bits(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="8 bits"):
        write_image(colour_patch(), tmp_path / "a.jpg", OutputOptions(bits=16))
    assert files_in(tmp_path) == []


def _embedded_profile(path: Path) -> bytes:
    """The ICC profile a TIFF (tag 34675) or a PNG or JPEG (through Pillow) carries."""
    if path.suffix == ".tif":
        with tifffile.TiffFile(path) as tif:
            return bytes(tif.pages[0].tags[34675].value)
    return Image.open(path).info["icc_profile"]


@pytest.mark.parametrize("suffix", [".tif", ".png", ".jpg"])
@pytest.mark.parametrize("key", ["srgb", "display-p3"])
def test_each_format_embeds_the_chosen_profile(tmp_path: Path, suffix: str, key: str) -> None:
    path = write_image(colour_patch(), tmp_path / f"out{suffix}", OutputOptions(space=key), exif={}, xmp={})
    profile = _embedded_profile(path)
    assert profile == icc_profile(SPACES[key])
    assert (
        ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip()
        == SPACES[key].name
    )


def test_wide_gamut_output_converts_back_to_the_render(tmp_path: Path) -> None:
    pixels = 0.2 + 0.6 * colour_patch()  # no channel near black, where 8-bit P3 cannot hold sRGB to 1/255
    path = write_image(pixels, tmp_path / "p3.png", OutputOptions(space="display-p3", bits=8))
    with Image.open(path) as image:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        srgb = ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"))
    assert np.abs(np.asarray(srgb) / 255 - pixels).max() <= 2 / 255


EXIF = {
    "Exif.Image.Make": "NIKON CORPORATION",
    "Exif.Image.Model": "NIKON D500",
    "Exif.Image.Orientation": "6",
    "Exif.Photo.ISOSpeedRatings": "400",
    "Exif.GPSInfo.GPSLatitudeRef": "N",
    "Exif.GPSInfo.GPSLatitude": "51/1 30/1 0/1",
}
XMP = {"Xmp.hostplug.recipe": '{"exposure": 0.5}', "Xmp.xmpMM.DerivedFrom": "DSC_0001.NEF"}


@pytest.mark.parametrize("suffix", [".tif", ".png", ".jpg"])
def test_exif_and_xmp_survive_and_orientation_is_upright(tmp_path: Path, suffix: str) -> None:
    path = write_image(colour_patch(), tmp_path / f"out{suffix}", exif=EXIF, xmp=XMP)
    with pyexiv2.Image(str(path)) as image:
        exif, xmp, profile = image.read_exif(), image.read_xmp(), image.read_icc()
    for key in (
        "Exif.Image.Make",
        "Exif.Image.Model",
        "Exif.GPSInfo.GPSLatitude",
        "Exif.Photo.ISOSpeedRatings",
    ):
        assert exif[key] == EXIF[key]
    assert exif["Exif.Image.Orientation"] == "1"
    # Exif gives the size of compressed pixels only; a TIFF's own tags give it (exiftool: "not allowed in TIFF")
    assert exif.get("Exif.Photo.PixelXDimension") == (None if suffix == ".tif" else "32")
    # a source stating no resolution gets 300 ppi (a TIFF said 1 pixel per nothing, a JPEG had none)
    resolution = [exif[f"Exif.Image.{tag}"] for tag in ("XResolution", "YResolution", "ResolutionUnit")]
    assert resolution == ["300/1", "300/1", "2"]
    with Image.open(path) as image:  # the format's own print size agrees (PNG pHYs, JFIF density; a TIFF's tags)
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert {key: xmp[key] for key in XMP} == XMP
    assert profile == icc_profile(SPACES["srgb"])


@pytest.mark.parametrize("suffix", [".tif", ".png", ".jpg"])
def test_software_names_hostplug_and_a_tifffile_shape_is_no_description(tmp_path: Path, suffix: str) -> None:
    # the source's Software (camera firmware, or "tifffile.py" of a TIFF input) described another program's file
    source = EXIF | {"Exif.Image.Software": "Ver.1.00", "Exif.Image.ImageDescription": '{"shape": [10, 20, 3]}'}
    path = write_image(colour_patch(), tmp_path / f"out{suffix}", exif=source)
    with pyexiv2.Image(str(path)) as image:
        exif = image.read_exif()
    assert exif["Exif.Image.Software"].startswith("hostplug ")
    assert "Exif.Image.ImageDescription" not in exif
    captioned = write_image(colour_patch(), tmp_path / f"captioned{suffix}",
                            exif=EXIF | {"Exif.Image.ImageDescription": "Harbour at dawn"})
    with pyexiv2.Image(str(captioned)) as image:
        assert image.read_exif()["Exif.Image.ImageDescription"] == "Harbour at dawn"


@pytest.mark.skipif(not RAWSAMPLES.is_dir(), reason="shared raw samples not present")
def test_a_raw_files_exif_is_carried_without_raw_structure(tmp_path: Path) -> None:
    exif = read_exif(RAWSAMPLES / "nikon_d500_adobedngconv_lossylinear__magicknet_DSC8695.dng")
    assert exif["Exif.Image.Model"] == "NIKON D500" and exif["Exif.Photo.LensModel"]
    assert not any(
        name in key for key in exif for name in ("ColorMatrix", "DNGVersion", "SubImage", "StripOff")
    )
    assert exif["Exif.Photo.BodySerialNumber"] == "2055816"  # the DNG's CameraSerialNumber, as Exif names it
    path = write_image(colour_patch(), tmp_path / "out.jpg", exif=exif)
    with pyexiv2.Image(str(path)) as image:
        written = image.read_exif()
    assert written["Exif.Photo.LensModel"] == exif["Exif.Photo.LensModel"]
    assert written["Exif.Photo.BodySerialNumber"] == "2055816"


def test_a_tiff_carries_exif_beyond_the_64_kb_a_jpeg_segment_holds(tmp_path: Path) -> None:
    # exiv2 encoded a TIFF's EXIF as a JPEG's segment, whose 64 KB dropped a long description and comment
    exif = {"Exif.Image.Make": "Canon", "Exif.Image.ImageDescription": "A" * 40000,
            "Exif.Photo.UserComment": "charset=Ascii " + "B" * 30000}
    path = write_image(colour_patch(), tmp_path / "out.tif", exif=exif)
    with pyexiv2.Image(str(path)) as image:
        written = image.read_exif()
    assert written["Exif.Image.ImageDescription"] == "A" * 40000 and len(written["Exif.Photo.UserComment"]) > 30000
    assert written["Exif.Image.Make"] == "Canon"


def test_exif_of_a_file_without_any_is_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    assert read_exif(tmp_path / "notes.txt") == {}
    assert read_exif(tmp_path / "missing.dng") == {}


def test_long_edge_shrinks_and_keeps_the_aspect_ratio(tmp_path: Path) -> None:
    pixels = np.full((300, 400, 3), 0.5, dtype=np.float32)
    data = tifffile.imread(write_image(pixels, tmp_path / "small.tif", OutputOptions(long_edge=100)))
    assert data.shape == (75, 100, 3)
    assert np.abs(data / 65535 - 0.5).max() < 1e-3  # flat grey stays the same grey
    same = tifffile.imread(write_image(pixels, tmp_path / "same.tif", OutputOptions(long_edge=1000)))
    assert same.shape == pixels.shape


def test_an_existing_file_is_kept_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(OutputError, match="--overwrite"):
        write_image(colour_patch(), target)
    assert target.read_bytes() == b"precious"
    write_image(colour_patch(), target, OutputOptions(overwrite=True))
    assert cv2.imread(str(target), cv2.IMREAD_UNCHANGED).shape == (24, 32, 3)


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_file_that_appears_while_writing_is_kept_without_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     hard_links: bool) -> None:
    # two renders to the same new name at once: both pass the check before rendering; the second must not win
    target = tmp_path / "out.tif"
    write_tiff = engine.output.write._write_tiff

    def meanwhile(partial: Path, *args: object) -> None:
        target.write_bytes(b"the other render's")
        write_tiff(partial, *args)

    monkeypatch.setattr(engine.output.write, "_write_tiff", meanwhile)
    if not hard_links:  # a FAT card or a network share
        monkeypatch.setattr(engine.output.write.os, "link", lambda *a: (_ for _ in ()).throw(PermissionError(1, "x")))
    with pytest.raises(OutputError, match="appeared while this render ran"):
        write_image(colour_patch(), target)
    assert target.read_bytes() == b"the other render's" and files_in(tmp_path) == ["out.tif"]


def test_a_failure_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_imwrite(path: Path, data: np.ndarray, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a tiff")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine.output.write.tifffile, "imwrite", broken_imwrite)
    with pytest.raises(RuntimeError):
        write_image(colour_patch(), tmp_path / "out.tif")
    assert files_in(tmp_path) == []


def test_an_interrupted_writes_old_temporary_is_removed_by_the_next_write_a_current_ones_kept(
        tmp_path: Path) -> None:
    # a render killed while writing (kill -9, a power cut: the service's journal of its writes is in a tmpfs too)
    # left a hidden 100 MB ".out.tif.xxxxxxxx.part" beside the output for good
    old, current = tmp_path / ".out.tif.0123abcd.part", tmp_path / ".out.tif.89abcdef.part"
    other = tmp_path / ".other.tif.0123abcd.part"
    for partial in (old, current, other):
        partial.write_bytes(b"half a TIFF")
    long_ago = os.stat(old).st_mtime - 2 * 3600
    for partial in (old, other):
        os.utime(partial, (long_ago, long_ago))
    write_image(colour_patch(), tmp_path / "out.tif")
    assert not old.exists()  # its writer is long gone
    assert current.exists() and other.exists()  # a write of this name under way now; another file's


def test_bad_metadata_is_an_output_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="metadata"):
        write_image(colour_patch(), tmp_path / "out.jpg", xmp={"Xmp.nosuchprefix.key": "1"})
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_xmp_beyond_a_jpegs_64_kb_is_kept_whole_by_tiff_and_png(tmp_path: Path, suffix: str) -> None:
    keywords = [f"keyword number {i} with some text" for i in range(2000)]  # a catalogue's 70 KB of them
    path = write_image(colour_patch(), tmp_path / f"out{suffix}", xmp={"Xmp.dc.subject": keywords})
    with pyexiv2.Image(str(path)) as image:
        assert image.read_xmp()["Xmp.dc.subject"] == keywords
    assert files_in(tmp_path) == [f"out{suffix}"]


def _extended_xmp(path: Path) -> tuple[bytes, str]:
    """A JPEG's Extended XMP, reassembled from its APP1 segments, and the GUID they carry."""
    data, at, chunks, guid, total = path.read_bytes(), 2, {}, "", 0
    header = b"http://ns.adobe.com/xmp/extension/\x00"
    while data[at] == 0xFF and data[at + 1] != 0xDA:
        length = int.from_bytes(data[at + 2:at + 4], "big")
        payload = data[at + 4:at + 2 + length]
        if data[at + 1] == 0xE1 and payload.startswith(header):
            guid = payload[len(header):len(header) + 32].decode()
            total, offset = (int.from_bytes(payload[len(header) + 32 + i:len(header) + 36 + i], "big") for i in (0, 4))
            chunks[offset] = payload[len(header) + 40:]
        at += 2 + length
    body = b"".join(chunks[k] for k in sorted(chunks))
    assert len(body) == total
    return body, guid


def test_xmp_beyond_a_jpegs_64_kb_goes_into_extended_xmp(tmp_path: Path) -> None:
    # a catalogue's thousands of keywords made the JPEG output fail ("render to TIFF or PNG")
    keywords = [f"keyword number {i} with some text" for i in range(4000)]  # about 140 KB of them
    record = {"Xmp.hostplug.recipe": json.dumps({"exposure": 0.5}), "Xmp.photoshop.Headline": "Harbour"}
    path = write_image(colour_patch(), tmp_path / "out.jpg", xmp={**record, "Xmp.dc.subject": keywords})
    with pyexiv2.Image(str(path)) as image:  # the standard packet, which exiv2 reads: hostplug's record whole
        standard = image.read_xmp()
    assert standard["Xmp.hostplug.recipe"] == record["Xmp.hostplug.recipe"] and "Xmp.dc.subject" not in standard
    body, guid = _extended_xmp(path)
    assert standard["Xmp.xmpNote.HasExtendedXMP"] == guid == hashlib.md5(body).hexdigest().upper()
    assert body.startswith(b"<x:xmpmeta") and body.count(b"<rdf:li>") == len(keywords)
    with Image.open(path) as image:
        image.load()  # the picture is whole
    # a JPEG by its format, whatever its name (a reviewer's out.dat --format jpeg was refused)
    other = write_image(colour_patch(), tmp_path / "out.dat", OutputOptions(format="jpeg"),
                        xmp={**record, "Xmp.dc.subject": keywords})
    assert _extended_xmp(other)[0] == body
    # a record that alone passes 64 KB cannot be split: refused, nothing left
    with pytest.raises(OutputError, match="its recipe record is more than the 64 KB a JPEG's XMP holds"):
        write_image(colour_patch(), tmp_path / "big.jpg", xmp={"Xmp.hostplug.recipe": "x" * 70_000})
    assert not (tmp_path / "big.jpg").exists()


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed (apt install "
                    "libimage-exiftool-perl): Adobe's reading of Extended XMP is checked with it")
def test_exiftool_reads_a_jpegs_extended_xmp_with_its_standard_packet(tmp_path: Path) -> None:
    keywords = [f"keyword number {i} with some text" for i in range(4000)]
    path = write_image(colour_patch(), tmp_path / "out.jpg", xmp={"Xmp.photoshop.Headline": "Harbour",
                                                                  "Xmp.dc.subject": keywords})
    read = json.loads(subprocess.run(["exiftool", "-j", "-m", "-XMP:Subject", "-XMP:Headline", str(path)],
                                     capture_output=True, text=True, check=True).stdout)[0]
    assert read["Subject"] == keywords and read["Headline"] == "Harbour"  # (-m: past exiftool's 1000 items)


@pytest.mark.parametrize(("resolution", "unit", "dpi"), [("300/1", "2", 300), ("118/1", "3", 299.72),
                                                      ("100000/1", "2", None), ("1/3", "2", None)])
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_the_print_size_reaches_the_header_only_where_it_fits(tmp_path: Path, suffix: str, resolution: str,
                                                             unit: str, dpi: float | None) -> None:
    # 100000 ppi wrapped to 34464 in JFIF's 16 bits, and a third of a pixel per inch was written as 0
    exif = {**EXIF, "Exif.Image.XResolution": resolution, "Exif.Image.YResolution": resolution,
            "Exif.Image.ResolutionUnit": unit}
    path = write_image(colour_patch(), tmp_path / f"out{suffix}", exif=exif)
    with Image.open(path) as image:  # a JPEG's JFIF header, a PNG's pHYs (Pillow's "dpi" falls back on the EXIF)
        found = image.info.get("jfif_density") if image.info.get("jfif_unit") == 1 else None
        found = found if suffix == ".jpg" else image.info.get("dpi")
    if dpi is None:
        assert found is None, found
    else:
        assert found == pytest.approx((dpi, dpi), abs=0.6)


def test_a_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        write_image(colour_patch(), tmp_path / "nowhere" / "out.tif")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_an_output_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="cannot write"):
        write_image(colour_patch(), folder / "out.tif")
    assert files_in(folder) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs a folder no one can create files in")
def test_an_unwritable_folder_is_an_output_error_even_for_root() -> None:
    with pytest.raises(OutputError, match="cannot write"):
        write_image(colour_patch(), "/proc/out.tif")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("out.bmp", {}, "output format"),
        ("out.tif", {"bits": 12}, "8 or 16"),
        ("out.tif", {"space": "rec2020"}, "colour space"),
        ("out.jpg", {"quality": 0}, "quality"),
    ],
)
def test_bad_options_are_refused_before_writing(tmp_path: Path, name: str, options: dict, message: str) -> None:
    with pytest.raises(OutputError, match=message):
        write_image(colour_patch(), tmp_path / name, OutputOptions(**options))
    assert files_in(tmp_path) == []


def test_a_format_given_names_any_file_but_a_raw(tmp_path: Path) -> None:
    """TIFF data could replace a raw named victim.dng; a name of another suffix (shot.v2) takes the format."""
    with pytest.raises(OutputError, match="out.nef is named as a raw, not a PNG file; name it out.png"):
        write_image(colour_patch(), tmp_path / "out.nef", OutputOptions(format="png"))
    assert list(tmp_path.iterdir()) == []
    path = write_image(colour_patch(), tmp_path / "shot.v2", OutputOptions(format="png"))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_noisy_jpeg_larger_than_one_byte_per_pixel_is_written(tmp_path: Path) -> None:
    noise = np.random.default_rng(2).random((256, 256, 3), dtype=np.float32)
    path = write_image(noise, tmp_path / "noise.jpg", OutputOptions(quality=100))
    assert path.stat().st_size > 256 * 256


@pytest.mark.parametrize("bits", [8, 16])
def test_quantise_rounds_exactly_as_numpy_does(bits: int) -> None:
    top = 65535 if bits == 16 else 255
    values = np.random.default_rng(3).uniform(-0.2, 1.2, (64, 97, 3)).astype(np.float32)
    ties = (np.arange(0, top, 0.5, dtype=np.float32) / np.float32(top))[: 64 * 97 * 3 // 2]
    values.reshape(-1)[: ties.size] = ties  # values whose scaled form lands on or next to .5
    expected = np.round(np.clip(values, 0.0, 1.0) * top).astype(np.uint16 if bits == 16 else np.uint8)
    np.testing.assert_array_equal(engine.output.write.quantise(values, bits), expected)
    band = np.zeros((80, 97, 3), dtype=expected.dtype)
    engine.output.write.quantise(values, bits, out=band[8:72])
    np.testing.assert_array_equal(band[8:72], expected)


@pytest.mark.parametrize("compression", ["none", "deflate"])
def test_a_tiff_carries_the_same_metadata_pyexiv2_would_write(tmp_path: Path, compression: str) -> None:
    """The TIFF writer stores EXIF (with its Exif and GPS directories) and XMP in the pass that writes the
    pixels; exiv2 reads back what it would have written into the file itself."""
    pixels = colour_patch()
    path = write_image(pixels, tmp_path / "out.tif", OutputOptions(compression=compression), exif=EXIF, xmp=XMP)
    reference = tmp_path / "reference.tif"
    tifffile.imwrite(reference, tifffile.imread(path), photometric="rgb", metadata=None)
    exif = engine.output.write._output_exif(EXIF, pixels.shape, SPACES["srgb"], "tiff")
    with pyexiv2.Image(str(reference)) as image:
        image.modify_exif(exif)
        image.modify_xmp(XMP)
    layout = ("ExifTag", "GPSTag", "StripOffsets", "StripByteCounts", "RowsPerStrip", "XMLPacket", "Compression",
              "Predictor", "Software", "InterColorProfile", "XResolution", "YResolution", "ResolutionUnit")
    with pyexiv2.Image(str(path)) as ours, pyexiv2.Image(str(reference)) as theirs:
        ours_exif, theirs_exif = (
            {k: v for k, v in image.read_exif().items() if k.rsplit(".", 1)[1] not in layout}
            for image in (ours, theirs)
        )
        assert ours_exif == theirs_exif
        assert ours.read_xmp() == theirs.read_xmp() == XMP
        assert ours.read_icc() == icc_profile(SPACES["srgb"])
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.compression == (1 if compression == "none" else 8)
        assert page.tags["GPSTag"].value["GPSLatitude"] == (51, 1, 30, 1, 0, 1)
        np.testing.assert_array_equal(page.asarray(), engine.output.write.quantise(pixels, 16))


def test_tiff_is_uncompressed_by_default_and_an_unknown_compression_is_refused(tmp_path: Path) -> None:
    with tifffile.TiffFile(write_image(colour_patch(), tmp_path / "a.tif")) as tif:
        assert tif.pages[0].compression == 1
    with pytest.raises(OutputError, match="compression"):
        write_image(colour_patch(), tmp_path / "b.tif", OutputOptions(compression="lzw"))
    assert files_in(tmp_path) == ["a.tif"]


def test_the_command_lines_colour_space_names_are_the_engines() -> None:
    from engine.output.formats import SPACE_NAMES

    assert tuple(SPACES) == SPACE_NAMES


def test_big_endian_exif_entries_are_turned_little_endian() -> None:
    import struct

    from engine.output.metadata import _read_ifd

    # MM header, one directory at 8: a SHORT (Orientation 6) and a RATIONAL (XResolution 300/1) stored at 38
    blob = (b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 2)
            + struct.pack(">HHI", 274, 3, 1) + struct.pack(">H", 6) + b"\0\0"
            + struct.pack(">HHII", 282, 5, 1, 38) + struct.pack(">I", 0) + struct.pack(">II", 300, 1))
    assert _read_ifd(blob, 8) == [(274, 3, 1, struct.pack("<H", 6)), (282, 5, 1, struct.pack("<II", 300, 1))]


def test_a_tiff_is_written_whatever_resolution_the_exif_claims(tmp_path: Path) -> None:
    """A caller's EXIF may hold a resolution tifffile refuses (zero, an unknown unit): the TIFF is still written."""
    exif = {"Exif.Image.XResolution": "1/0", "Exif.Image.YResolution": "0/1", "Exif.Image.ResolutionUnit": "255",
            "Exif.Image.Make": "NIKON CORPORATION"}
    path = write_image(colour_patch(), tmp_path / "out.tif", exif=exif)
    with pyexiv2.Image(str(path)) as image:
        assert image.read_exif()["Exif.Image.Make"] == "NIKON CORPORATION"


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("space", ["srgb", "display-p3"])
def test_an_image_turned_upright_as_a_view_is_written_as_its_copy(tmp_path: Path, orientation: int,
                                                                  space: str) -> None:
    """The pipeline turns a render upright as a view (no full-size copy); the writer reads it in bands (of
    columns, for a quarter turn) and writes what it writes from a contiguous copy, bit for bit."""
    from engine import tiling
    from engine.pipeline import apply_orientation

    rng = np.random.default_rng(orientation)
    pixels = rng.uniform(-0.1, 1.1, (70, 45, 3)).astype(np.float32)
    view = apply_orientation(pixels, orientation)
    saved, tiling.TILE_ROWS = tiling.TILE_ROWS, 16  # several bands, a short last one
    try:
        options = OutputOptions(bits=16, space=space)
        as_view = tifffile.imread(write_image(view, tmp_path / "view.tif", options))
        as_copy = tifffile.imread(write_image(np.ascontiguousarray(view), tmp_path / "copy.tif", options))
    finally:
        tiling.TILE_ROWS = saved
    assert as_view.shape == view.shape and np.array_equal(as_view, as_copy)


@pytest.mark.parametrize("options, says", [
    ({"long_edge": -5}, "long edge -5"), ({"long_edge": 0}, "long edge 0"), ({"quality": 90.5}, "JPEG quality"),
    ({"bits": "16"}, "bits per channel"), ({"space": "cmyk"}, "colour space"), ({"format": "gif"}, "format"),
    ({"compression": "lzw"}, "compression"),
])
def test_output_options_a_script_gets_wrong_are_refused(options: dict, says: str) -> None:
    # a long edge of -5 wrote a 1 x 1 picture, and a quality of 90.5 failed inside Pillow
    with pytest.raises(OutputError, match=says):
        OutputOptions(**options)


def test_one_render_refuses_two_outputs_of_one_name_before_writing(tmp_path: Path, sample_dng: Path) -> None:
    from engine.output.export import render_files

    target = tmp_path / "dup.jpg"
    with pytest.raises(OutputError, match="named for two outputs"):
        render_files(sample_dng, [(target, None), (tmp_path / "." / "dup.jpg", OutputOptions(quality=80))])
    assert not list(tmp_path.iterdir())
    with pytest.raises(OutputError, match="must be an engine.OutputOptions"):
        render_files(sample_dng, [(target, {"quality": 80})])  # type: ignore[list-item]


def test_render_takes_a_path_and_refuses_what_no_render_has(sample_dng: Path) -> None:
    import engine

    assert engine.render(str(sample_dng), preview=300).pixels.shape == (200, 300, 3)
    with pytest.raises(engine.RecipeError, match="preview -1"):
        engine.render(sample_dng, preview=-1)
    with pytest.raises(engine.OptionError, match="unknown device 'gpu'"):
        engine.render(sample_dng, device="gpu")


def test_cuda_without_a_gpu_is_an_option_error_not_torchs_assertion(sample_dng: Path) -> None:
    import torch

    import engine

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(engine.OptionError, match="no CUDA GPU is available here"):
        engine.render(sample_dng, device="cuda")


@pytest.mark.parametrize("space", ["display-p3", "adobe-rgb", "prophoto"])
@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_a_16_bit_output_in_a_wide_space_reads_back_as_srgb(tmp_path: Path, space: str, suffix: str) -> None:
    # fed back in (a batch, a watch folder), hostplug's own ProPhoto TIFF was read as if it were sRGB: dull colours
    import engine
    from engine.io.rgb_input import read_rgb_image

    patch = colour_patch()
    srgb = read_rgb_image(write_image(patch, tmp_path / f"srgb{suffix}", OutputOptions(bits=16)))[0]
    wide = write_image(patch, tmp_path / f"wide{suffix}", OutputOptions(bits=16, space=space))
    assert np.abs(read_rgb_image(wide)[0] - srgb).max() < 1e-3
    assert engine.open(wide).kind == "rgb"


def test_a_16_bit_image_with_a_lookup_table_profile_is_refused_not_taken_as_srgb(tmp_path: Path) -> None:
    from engine.errors import UnsupportedInputError
    from engine.io.icc_input import read_profile

    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # tables, no colorants
    with pytest.raises(UnsupportedInputError, match="lookup tables"):
        read_profile(lab, "x.tif")


def test_a_preview_written_as_an_output_rerenders_at_its_size(tmp_path: Path, sample_dng: Path) -> None:
    import engine

    preview = tmp_path / "preview.png"
    engine.write_image(engine.render(sample_dng, preview=300), preview)
    again = engine.rerender_file(preview).output
    assert np.array_equal(cv2.imread(str(again), cv2.IMREAD_UNCHANGED), cv2.imread(str(preview),
                                                                                     cv2.IMREAD_UNCHANGED))


def test_publishing_without_hard_links_still_never_replaces_a_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # FAT and exFAT memory cards have no hard links: the no-clobber publish checks again and renames
    from engine.output.publish import publish

    def no_links(_source: object, _target: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    partial, target = tmp_path / ".a.part", tmp_path / "a.jpg"
    partial.write_bytes(b"new")
    publish(partial, target, overwrite=False)
    assert target.read_bytes() == b"new"
    partial.write_bytes(b"newer")
    with pytest.raises(FileExistsError):
        publish(partial, target, overwrite=False)
    assert target.read_bytes() == b"new"


def _without_hard_links(monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """A file system without hard links (FAT, exFAT, some SMB shares), where a rename is slow to come: every
    publisher that found the name free is then inside its check-then-rename window at once."""
    import time

    def no_links(_source: object, _target: object) -> None:
        raise OSError(error, os.strerror(error))

    real_replace = os.replace

    def slow_replace(source: object, target: object) -> None:
        time.sleep(0.2)
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(os, "replace", slow_replace)


@pytest.mark.parametrize("error", [1, 18], ids=["EPERM", "EXDEV"])
def test_writers_racing_for_one_name_without_hard_links_never_replace_each_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    # two daemon workers, or the daemon and a manual render: each found the name free, and each renamed its file
    # over it, the last one replacing the first's output
    import threading

    _without_hard_links(monkeypatch, error)
    target, count = tmp_path / "IMG_0001.tif", 6
    start = threading.Barrier(count)
    outcomes: dict[int, str] = {}

    def writer(n: int) -> None:
        start.wait()
        try:
            write_image(np.full((8, 8, 3), n / 10, np.float32), target, OutputOptions(bits=8))
            outcomes[n] = "written"
        except OutputError as e:
            outcomes[n] = str(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, outcome in outcomes.items() if outcome == "written"]
    assert len(winners) == 1, outcomes
    assert all("exists" in outcome or "appeared while" in outcome for n, outcome in outcomes.items() if n != winners[0])
    written = tifffile.imread(target)
    expected = np.full((8, 8, 3), winners[0] / 10, np.float32)
    assert np.array_equal(written, tifffile.imread(write_image(expected, tmp_path / "expected.tif",
                                                               OutputOptions(bits=8))))
    assert files_in(tmp_path) == ["IMG_0001.tif", "expected.tif"]  # no partial, no reservation left


def test_a_name_a_render_replaced_on_purpose_while_it_was_reserved_is_not_replaced_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the daemon names its own outputs with overwrite; a manual render without it had reserved the name just
    # before, and must then leave the daemon's file, not rename its own over it
    import errno

    from engine.output.publish import publish

    real_open = os.open
    target, theirs, ours = tmp_path / "a.jpg", tmp_path / ".theirs.part", tmp_path / ".ours.part"
    theirs.write_bytes(b"the daemon's render")
    ours.write_bytes(b"a manual render")

    def open_then_overwritten(path: str, flags: int, *args: int, **kwargs: object) -> int:
        fd = real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]
        if flags & os.O_EXCL:
            publish(theirs, target, overwrite=True)
        return fd

    def no_links(_source: object, _target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(os, "open", open_then_overwritten)
    with pytest.raises(FileExistsError):
        publish(ours, target, overwrite=False)
    assert target.read_bytes() == b"the daemon's render"
    assert files_in(tmp_path) == [".ours.part", "a.jpg"]  # the caller removes its partial


def test_a_rename_that_fails_without_hard_links_leaves_neither_the_name_nor_a_partial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def no_links(_source: object, _target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    def refused(_source: object, _target: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(OutputError, match="Input/output error"):
        write_image(gradient(), tmp_path / "out.tif")
    assert files_in(tmp_path) == []


def test_a_render_gives_all_its_outputs_or_none(tmp_path: Path, sample_dng: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # a hot folder's web JPEG stayed published for a file whose master TIFF failed (a full disk); and a re-render
    # that failed so had already replaced the good JPEG of the render before, then deleted it
    import errno

    from engine.output import export

    targets = [(tmp_path / "web.jpg", None), (tmp_path / "master.tif", None)]
    real = engine.output.write._write_tiff

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.output.write, "_write_tiff", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        export.render_files(sample_dng, targets)
    assert files_in(tmp_path) == []
    monkeypatch.setattr(engine.output.write, "_write_tiff", real)
    export.render_files(sample_dng, targets)
    before = {name: (tmp_path / name).read_bytes() for name in ("web.jpg", "master.tif")}
    monkeypatch.setattr(engine.output.write, "_write_tiff", disk_full)
    overwrite = [(path, OutputOptions(overwrite=True)) for path, _ in targets]
    with pytest.raises(OutputError, match="No space left"):
        export.render_files(sample_dng, overwrite, changes={"exposure": 1.0})
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert files_in(tmp_path) == ["master.tif", "web.jpg"]


def test_a_short_write_on_a_full_disk_says_the_disk_is_full(tmp_path: Path, sample_dng: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # numpy's tofile (a resized TIFF is written as a whole array) reports a short write with no errno: the message
    # did not say the disk was full, and the watch daemon, not seeing ENOSPC, failed the raw for good
    import errno
    import shutil
    from types import SimpleNamespace

    def short_write(*args: object, **kwargs: object) -> None:
        raise OSError("1279200 requested and 805560 written")

    monkeypatch.setattr(engine.output.write, "_write_tiff", short_write)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: SimpleNamespace(total=1 << 30, used=1 << 30, free=4096))
    with pytest.raises(OutputError, match="No space left on device") as caught:
        engine.render_file(sample_dng, tmp_path / "x.tif")
    assert caught.value.__cause__.errno == errno.ENOSPC
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_an_image_cut_short_while_its_metadata_is_written_is_never_published(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch,
                                                                             suffix: str) -> None:
    """exiv2 rewrites a JPEG or PNG to add its metadata and, on a full disk, leaves it cut short without an error
    (measured on a full tmpfs): the truncated file was published as the output, and the daemon counted it done."""
    from hostplug.daemon.journal import disk_full

    real = engine.output.write._write_metadata

    def cut_short(path: Path, *args: object) -> None:
        real(path, *args)
        os.truncate(path, path.stat().st_size - 100)

    monkeypatch.setattr(engine.output.write, "_write_metadata", cut_short)
    with pytest.raises(OutputError, match="cut short while its metadata was written") as caught:
        write_image(colour_patch(), tmp_path / f"out{suffix}", exif=EXIF, xmp=XMP)
    assert disk_full(caught.value.__cause__)  # the daemon waits for room instead of failing the raw
    assert files_in(tmp_path) == []


def test_a_read_only_file_system_is_one_error_not_a_traceback(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # On a write-locked card or a read-only share, deleting the partial file fails too (EROFS, not "no such
    # file"): that second error hid the first and the command ended in a traceback.
    import errno

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(engine.output.write, "_write_tiff", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.raises(OutputError, match="cannot write .*out.tif: Read-only file system"):
        write_image(gradient(), tmp_path / "out.tif")


@pytest.mark.parametrize("suffix", [".tif", ".jpg"])
def test_an_outputs_shot_reads_back_as_its_exif_states_it(tmp_path: Path, suffix: str) -> None:
    """`hostplug info` of an output shows the shutter, aperture, focal length and time its EXIF carries (it
    showed only the ISO: the rest came from LibRaw, which reads raws only)."""
    import engine

    shot = EXIF | {"Exif.Photo.ExposureTime": "1/640", "Exif.Photo.FNumber": "63/10",
                   "Exif.Photo.FocalLength": "1290/10", "Exif.Photo.DateTimeOriginal": "2018:07:11 01:18:47"}
    camera = engine.open(write_image(colour_patch(), tmp_path / f"out{suffix}", exif=shot)).camera
    assert (camera.exposure_time, camera.f_number, camera.focal_length) == (1 / 640, 6.3, 129.0)
    assert camera.timestamp is not None and camera.timestamp.isoformat() == "2018-07-11T01:18:47"
    bare = engine.open(write_image(colour_patch(), tmp_path / f"bare{suffix}", exif={})).camera
    assert (bare.exposure_time, bare.f_number, bare.focal_length, bare.timestamp) == (0.0, 0.0, 0.0, None)


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_shooting_tags_a_dng_keeps_in_ifd0_are_written_where_exif_readers_look(tmp_path: Path, sample_dng: Path,
                                                                                suffix: str) -> None:
    """TIFF/EP lets a DNG keep ExposureTime, FNumber and ISO in IFD0 (the bundled sample does); an output copied
    them there, where Exif readers do not look (exiftool: "Wrong IFD"), and stated no Exif version."""
    import engine

    out = engine.render_file(sample_dng, tmp_path / f"out{suffix}").output
    exif = read_exif(out)
    assert (exif["Exif.Photo.ExposureTime"], exif["Exif.Photo.FNumber"], exif["Exif.Photo.ISOSpeedRatings"]) == (
        "1/125", "8/1", "200")
    assert not [key for key in exif if key.startswith("Exif.Image.") and key.endswith(("Time", "Number", "Ratings"))
                and key != "Exif.Image.DateTime"]  # (when the file was written)
    with pyexiv2.Image(str(out)) as image:
        written = image.read_exif()
    assert written["Exif.Photo.ExifVersion"] == "48 50 51 50"  # "0232"
    if suffix == ".jpg":  # what Exif requires a JPEG to state of its YCbCr layout
        assert written["Exif.Image.YCbCrPositioning"] == "1" and "Exif.Photo.ComponentsConfiguration" in written


def test_an_output_records_the_raw_as_it_was_opened_even_if_it_changed_or_went(tmp_path: Path,
                                                                              sample_dng: Path) -> None:
    """The source's SHA-256 was taken when the output was written: a raw changed after opening was recorded as
    the source of pixels it never gave (and a rerender would take it), and one deleted failed in pathlib."""
    import shutil

    import engine
    from engine.filehash import file_sha256
    from engine.xmp.provenance import read_provenance

    raw = Path(shutil.copy(sample_dng, tmp_path / "shot.dng"))
    opened = file_sha256(raw)
    rendered = engine.render(engine.open(raw))
    with raw.open("ab") as f:
        f.write(b"metadata another program wrote")
    assert read_provenance(engine.write_image(rendered, tmp_path / "changed.jpg")).sha256 == opened
    raw.unlink()
    assert read_provenance(engine.write_image(rendered, tmp_path / "gone.jpg")).sha256 == opened


PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos" / "cameras"


@pytest.mark.parametrize("make", ["NIKON CORPORATION", "Panasonic", "Minolta Co., Ltd.", "EASTMAN KODAK COMPANY"])
def test_a_jpeg_whose_exif_names_a_camera_is_read_as_the_image_it_is(tmp_path: Path, make: str) -> None:
    """LibRaw takes a JPEG whose EXIF names some camera makers for a raw of that camera: a camera's own JPEG was
    refused as "raw data cannot be decoded", and hostplug's own JPEG of a Nikon raw read its compressed bytes as
    a 24 x 32 mosaic. A JPEG (or PNG) is read as the image it is."""
    import engine

    exif = EXIF | {"Exif.Image.Make": make, "Exif.Photo.ExposureTime": "1/640"}
    path = write_image(colour_patch(), tmp_path / "camera.jpg", exif=exif)
    source = engine.open(path)
    assert source.kind == "rgb" and source.sensor.shape == (24, 32, 3)
    assert source.camera.make == make and source.camera.exposure_time == 1 / 640
    assert engine.render(source).pixels.shape[:2] in ((24, 32), (32, 24))


@pytest.mark.parametrize("make", ["NIKON CORPORATION", "Panasonic", "Canon"])
def test_a_camera_jpeg_named_like_a_raw_is_refused_with_what_to_rename_it(tmp_path: Path, make: str) -> None:
    """A Nikon or Panasonic JPEG renamed .NEF was refused as damaged raw data (LibRaw took it for a raw of the
    camera its EXIF names); every JPEG named like a raw gets the same line: what it is and what to rename it."""
    from conftest import hostplug

    exif = EXIF | {"Exif.Image.Make": make}
    fake = write_image(colour_patch(), tmp_path / "camera.jpg", exif=exif).rename(tmp_path / "DSC_0001.NEF")
    result = hostplug("render", fake, "-o", tmp_path / "out.tif")
    assert result.exit_code == 3 and not (tmp_path / "out.tif").exists()
    assert result.stderr == (f"hostplug: error: {fake}: a JPEG image named like a raw (.NEF); hostplug reads an "
                             "image by its suffix: rename it DSC_0001.jpg to render it\n")


@pytest.mark.skipif(not PHOTOS.is_dir(), reason="shared photos not present (../shared/photos)")
@pytest.mark.parametrize("name", ["Nikon_D70.jpg", "Panasonic_FZ20.jpg", "Minolta_DiMAGE_5.jpg",
                                  "Kodak_Easyshare_M5370.jpg", "Casio_EX-Z3.jpg", "Canon_PowerShot_G11.jpg"])
def test_camera_jpegs_render_and_carry_their_exif(tmp_path: Path, name: str) -> None:
    """Camera JPEGs that LibRaw took for raws, or whose EXIF exiv2 stumbles on (the D70's maker note, text that
    is no UTF-8 in the Casio's and the G11's), render, and their EXIF reaches the output."""
    from conftest import hostplug

    result = hostplug("render", PHOTOS / name, "-o", tmp_path / "out.tif")
    assert result.exit_code == 0, result.stderr
    with Image.open(PHOTOS / name) as photo:
        model, taken = photo.getexif()[272].strip(), photo.getexif().get_ifd(0x8769)[36867]
    out = read_exif(tmp_path / "out.tif")
    assert out["Exif.Image.Model"].strip() == model and out["Exif.Photo.DateTimeOriginal"] == taken


def test_exif_text_in_latin1_or_utf8_is_read_as_written(tmp_path: Path) -> None:
    """Older cameras and tools write EXIF text in Latin-1; pyexiv2 decodes UTF-8 only, and one such value lost
    the file's whole EXIF. Each value is read as UTF-8 where it is, else as Latin-1, and carried over."""
    exif = Image.Exif()
    exif[271], exif[272] = "NIKON CORPORATION", "NIKON D70"
    exif[315] = "J\u00fcrgen".encode("latin-1")  # Artist
    exif[33432] = "\u00a9 Jos\u00e9".encode()  # Copyright, UTF-8
    Image.new("RGB", (16, 16), (128, 100, 80)).save(tmp_path / "latin1.jpg", exif=exif.tobytes())
    source = read_exif(tmp_path / "latin1.jpg")
    assert source["Exif.Image.Artist"] == "J\u00fcrgen" and source["Exif.Image.Copyright"] == "\u00a9 Jos\u00e9"
    out = read_exif(write_image(colour_patch(), tmp_path / "out.jpg", exif=source))
    assert out["Exif.Image.Artist"] == "J\u00fcrgen" and out["Exif.Image.Model"] == "NIKON D70"


def test_a_windows_title_beside_latin1_text_keeps_the_exif(tmp_path: Path) -> None:
    """On the Latin-1 path, a Windows XP* tag (which pyexiv2 decodes from UCS-2) holding a character beyond
    Latin-1 made the re-decoding raise, and the file's whole EXIF was lost."""
    exif = Image.Exif()
    exif[271], exif[272] = "NIKON CORPORATION", "NIKON D70"
    exif[315] = "J\u00fcrgen".encode("latin-1")  # Artist, Latin-1: the Latin-1 path
    exif[0x9C9B] = "Harbour \u2013 5\u20ac ferry".encode("utf-16-le")  # XPTitle
    Image.new("RGB", (16, 16)).save(tmp_path / "titled.jpg", exif=exif.tobytes())
    read = read_exif(tmp_path / "titled.jpg")
    assert read["Exif.Image.Model"] == "NIKON D70" and read["Exif.Image.Artist"] == "J\u00fcrgen"
    assert read["Exif.Image.XPTitle"] == "Harbour \u2013 5\u20ac ferry"


@pytest.mark.skipif(not PHOTOS.is_dir(), reason="shared photos not present (../shared/photos)")
def test_the_muted_reread_holds_exiv2_so_no_write_loses_its_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Nikon D70's maker note makes exiv2 log an error; its EXIF is read again with the log muted. exiv2's log
    is one for the process, so a write in another thread meanwhile would lose its errors (and an output its XMP):
    the re-read holds the lock every use of exiv2 takes."""
    import threading

    from engine.output import metadata

    levels: list[tuple[int, bool]] = []
    real = pyexiv2.set_log_level

    def set_level(level: int) -> None:
        free = [False]
        other = threading.Thread(target=lambda: free.__setitem__(0, metadata.EXIV2.acquire(timeout=0) and
                                                                 (metadata.EXIV2.release() or True)))
        other.start()
        other.join()
        levels.append((level, free[0]))
        real(level)

    monkeypatch.setattr(pyexiv2, "set_log_level", set_level)
    assert read_exif(PHOTOS / "Nikon_D70.jpg")["Exif.Image.Model"] == "NIKON D70"
    assert levels == [(4, False), (3, False)]  # muted and restored, another thread locked out throughout


def test_a_raspberry_pi_raw_named_jpg_is_still_read_as_a_raw(tmp_path: Path) -> None:
    """``raspistill --raw`` writes a JPEG with the sensor's Bayer data after it (a "BRCM" block at a fixed size from
    the end), which LibRaw reads: a JPEG that does not end where its picture ends still goes to LibRaw."""
    import struct

    import engine

    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 140, 90)).save(picture, format="JPEG")
    jpeg = pyexiv2.ImageData(picture.getvalue())
    jpeg.modify_exif({"Exif.Image.Make": "RaspberryPi", "Exif.Image.Model": "RP_OV5647"})
    tail = bytearray(0x61B800)  # the OV5647's raw block: header, then 1944 rows of 10-bit pixels
    tail[0:5] = b"BRCMo"
    header = b"test" + bytes(28) + struct.pack("<HHHH", 2592, 1944, 0, 0) + bytes(24) + struct.pack("<HH", 0, 33)
    tail[0xB0 : 0xB0 + len(header) + 2] = header + bytes([2, 3])
    stride = ((2592 * 5 + 3 >> 2) + 0x1F) & ~0x1F
    pixels = np.random.default_rng(0).integers(40, 255, stride * 1944, np.uint8)
    tail[0x8000 : 0x8000 + stride * 1944] = pixels.tobytes()
    (tmp_path / "rpi.jpg").write_bytes(jpeg.get_bytes() + bytes(tail))
    jpeg.close()
    source = engine.open(tmp_path / "rpi.jpg")
    assert source.kind == "raw" and source.sensor.shape == (1944, 2592)


@pytest.mark.parametrize(("tv", "av", "seconds", "f_number"), [("8/1", "7/2", 1 / 256, 3.4),
                                                                ("-3/1", "6/1", 8.0, 8.0),
                                                                ("1/0", "", 0.0, 0.0)])
def test_an_image_stating_only_apex_values_shows_its_shutter_and_aperture(tmp_path: Path, tv: str, av: str,
                                                                         seconds: float, f_number: float) -> None:
    """Older cameras (Minolta DiMAGE 5, 7, S304, S404) state shutter and aperture only as APEX values."""
    import engine

    exif = EXIF | {"Exif.Photo.ShutterSpeedValue": tv} | ({"Exif.Photo.ApertureValue": av} if av else {})
    camera = engine.open(write_image(colour_patch(), tmp_path / "apex.jpg", exif=exif)).camera
    assert (camera.exposure_time, camera.f_number) == (pytest.approx(seconds), f_number)


def test_a_keyword_beginning_type_keeps_its_text() -> None:
    """exiv2 reads an item "type=..." as an array type: such a list is written as a sequence, its text kept."""
    assert exiv2_xmp({"Xmp.dc.publisher": ["Studio Nord"]}) == {"Xmp.dc.publisher": "type=Bag",
                                                                "Xmp.dc.publisher[1]": "Studio Nord"}
    assert exiv2_xmp({"Xmp.dc.publisher": ["type=Seq x"]}) == {"Xmp.dc.publisher": ["type=Seq x"]}
    assert exiv2_xmp({"Xmp.dc.creator": ["A", "B"]}) == {"Xmp.dc.creator": ["A", "B"]}  # ordered: a Seq


def test_an_exif_version_older_than_its_time_offsets_is_raised_to_hold_them(tmp_path: Path) -> None:
    # a tester's outputs said Exif 0221 beside the OffsetTime tags of Exif 2.31, which exiftool -validate flags
    old = {**EXIF, "Exif.Photo.ExifVersion": "48 50 50 49"}  # 0221, as most raws state
    exif, _xmp = read_metadata(write_image(colour_patch(), tmp_path / "out.jpg", exif=old))
    assert "Exif.Photo.OffsetTime" in exif and exif["Exif.Photo.ExifVersion"] == "48 50 51 50"  # 0232
    newer = {**EXIF, "Exif.Photo.ExifVersion": "48 50 51 50"}
    exif, _xmp = read_metadata(write_image(colour_patch(), tmp_path / "new.jpg", exif=newer))
    assert exif["Exif.Photo.ExifVersion"] == "48 50 51 50"
