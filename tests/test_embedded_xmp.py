"""A DNG's own XMP packet (TIFF tag 700), where Lightroom and Camera Raw keep a DNG's edit instead of a sidecar: its
rotation and develop settings are honoured like an Adobe sidecar's, after every sidecar, and never written."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from engine.training.synthetic import WAVELENGTHS, Scene, camera_from_colour, illuminant, render_raw, write_dng
from engine.xmp.embedded import embedded_packet
from engine.xmp.sidecar import read_sidecar, sidecar_orientation
from hostplug.cli import main
from tests.conftest import hostplug, read_metadata

HEIGHT, WIDTH = 120, 180  # stored landscape; a white block in the stored image's top-left corner
EMBEDDED = "IMG_0001.dng's embedded XMP (tiff:Orientation)"

# What Lightroom writes into a DNG it rotated clockwise and brightened by one stop.
_LIGHTROOM = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
              '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
              'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
              'xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" tiff:Orientation="{orientation}" '
              'xmp:Rating="4" crs:WhiteBalance="As Shot" crs:Exposure2012="{exposure}"/></rdf:RDF></x:xmpmeta>'
              '<?xpacket end="w"?>')


def _packet(orientation: object = 6, exposure: str = "+1.00") -> bytes:
    return _LIGHTROOM.format(orientation=orientation, exposure=exposure).encode()


@pytest.fixture(scope="module")
def block() -> object:
    """A small computed raw, grey with a white block in the top-left corner of the stored image."""
    index = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    index[10:40, 10:50] = 1
    n = len(WAVELENGTHS)
    scene = Scene(np.stack([np.full(n, 0.18), np.full(n, 0.9)]), ("grey", "white"), (False, False), index,
                  np.ones((HEIGHT, WIDTH), dtype=np.float32))
    return render_raw(camera_from_colour(), illuminant("D55"), scene, noise=False)


def _dng(block: object, folder: Path, xmp: bytes | None) -> Path:
    """``folder/shots/IMG_0001.dng``, EXIF orientation 1, with ``xmp`` in IFD0's tag 700 (None: no packet)."""
    raw = folder / "shots" / "IMG_0001.dng"
    raw.parent.mkdir(parents=True, exist_ok=True)
    write_dng(raw, block, make="hostplug", model="Embedded XMP test", iso=100, exposure_time=0.01, f_number=8.0,
              xmp=xmp)
    return raw


def _ifd0_entry(data: bytearray, code: int) -> int:
    """Where the entry of tag ``code`` is in IFD0 of the little-endian TIFF ``data`` (12 bytes: code, type,
    count, value or offset)."""
    (ifd0,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd0)
    return next(at for at in (ifd0 + 2 + 12 * i for i in range(count)) if struct.unpack_from("<H", data, at)[0] == code)


def _corner(path: Path) -> str:
    """Which corner of the picture holds the white block."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float64)
    corners = {"top-left": image[:45, :45], "top-right": image[:45, -45:], "bottom-left": image[-45:, :45],
               "bottom-right": image[-45:, -45:]}
    means = {name: float(area.mean()) for name, area in corners.items()}
    return max(means, key=means.__getitem__)


def _render(raw: Path, out: Path, *options: object) -> dict:
    result = hostplug("render", raw, "-o", out, "--bits", 8, "--no-service", "--json", *options)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_the_packet_is_read_from_tag_700_of_a_dng_or_tiff(block: object, tmp_path: Path) -> None:
    raw = _dng(block, tmp_path, _packet())
    assert embedded_packet(raw) == _packet()
    assert embedded_packet(_dng(block, tmp_path / "bare", None)) is None
    tiff = tmp_path / "picture.tif"
    tifffile.imwrite(tiff, np.zeros((4, 4), np.uint8), extratags=[(700, "B", len(_packet()), _packet(), True)])
    assert embedded_packet(tiff) == _packet()  # read for its catalogue data only (see the test below)
    fifo = tmp_path / "pipe.dng"
    os.mkfifo(fifo)
    assert embedded_packet(fifo) is None  # not waited on: the render refuses the FIFO itself


def test_a_lightroom_rotation_in_the_dng_renders_upright(block: object, tmp_path: Path) -> None:
    raw = _dng(block, tmp_path, _packet(orientation=6, exposure="0"))
    out = tmp_path / "out.png"
    result = _render(raw, out)
    assert cv2.imread(str(out)).shape[:2] == (WIDTH, HEIGHT) and _corner(out) == "top-right"  # turned clockwise
    exif, xmp = read_metadata(out)
    assert exif.get("Exif.Image.Orientation", "1") == "1"  # no viewer turns it again
    assert result["orientation"] == {"value": 6, "meaning": "rotated 90 CW", "from": EMBEDDED}
    assert json.loads(xmp["Xmp.hostplug.decided"])["orientation"]["from"] == EMBEDDED
    assert xmp["Xmp.xmp.Rating"] == "4"  # the DNG's catalogue data, as before


def test_the_dngs_exposure_is_honoured(block: object, tmp_path: Path) -> None:
    plain = _render(_dng(block, tmp_path / "plain", None), tmp_path / "plain.png")
    edited = _render(_dng(block, tmp_path, _packet(orientation=1, exposure="+1.00")), tmp_path / "edited.png")
    assert plain["recipe"]["exposure"] == 0.0 and edited["recipe"]["exposure"] == 1.0
    brighter = cv2.imread(str(tmp_path / "edited.png")).mean() / cv2.imread(str(tmp_path / "plain.png")).mean()
    assert brighter > 1.3


def test_every_sidecar_comes_before_the_dngs_own_xmp(block: object, tmp_path: Path) -> None:
    raw = _dng(block, tmp_path, _packet(orientation=6, exposure="+1.00"))
    assert hostplug("edit", raw, "--contrast", "10").exit_code == 0  # starts from Lightroom's settings...
    assert read_sidecar(raw).recipe.exposure == 1.0
    assert hostplug("edit", raw, "--exposure", "0.25").exit_code == 0  # ...and then holds ours
    assert embedded_packet(raw) == _packet(orientation=6, exposure="+1.00")  # the DNG is never written
    out = tmp_path / "ours.png"
    result = _render(raw, out)
    assert result["recipe"]["exposure"] == 0.25 and result["recipe"]["contrast"] == 10.0
    assert result["orientation"]["from"] == EMBEDDED  # our sidecar sets no orientation: Lightroom's stays
    adobe = raw.with_suffix(".xmp")
    adobe.write_text(_LIGHTROOM.format(orientation=8, exposure="0"))  # a sidecar's rotation wins
    assert sidecar_orientation(raw).origin == "IMG_0001.xmp (tiff:Orientation)"
    _render(raw, tmp_path / "adobe.png")
    assert _corner(tmp_path / "adobe.png") == "bottom-left"


@pytest.mark.parametrize("flag", ['crs:HasSettings="False"', 'crs:AlreadyApplied="True"'])
def test_settings_adobe_marks_as_no_edit_are_not_applied(block: object, tmp_path: Path, flag: str) -> None:
    """Adobe DNG Converter's packet says HasSettings="False"; a DNG whose pixels hold the edit, AlreadyApplied."""
    packet = _packet(orientation=6).replace(b"crs:Exposure2012", flag.encode() + b" crs:Exposure2012")
    raw = _dng(block, tmp_path, packet)
    info = read_sidecar(raw)
    assert (info.hints, info.adobe) == ({}, {}) and info.orientation.value == 6  # the rotation still counts


def test_a_tag_700_of_numbers_is_no_packet(block: object, tmp_path: Path) -> None:
    raw = _dng(block, tmp_path, None)
    data = bytearray(raw.read_bytes())
    struct.pack_into("<H", data, _ifd0_entry(data, 274), 700)  # the Orientation entry (SHORT, 1) made tag 700
    raw.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["show", str(raw)])
    assert result.exit_code == 4 and result.stderr.splitlines() == [
        f"hostplug: error: {raw}'s embedded XMP: not an XMP packet (the DNG's tag 700 holds int values, not text); "
        "save the metadata to the file again in Lightroom, or remove the packet (exiftool -XMP:all= FILE) to render "
        "without its edits"]


def test_show_and_info_say_what_came_from_the_dng(block: object, tmp_path: Path) -> None:
    raw = _dng(block, tmp_path, _packet(orientation=6, exposure="+0.50"))
    shown = hostplug("show", raw).stdout
    assert "  sidecar:    none\n" in shown and "  embedded:   the DNG's own XMP" in shown
    assert ("  hints:      exposure 0.5 (from Adobe Camera Raw settings in IMG_0001.dng's embedded XMP)"
            in shown)
    assert f"  orientation: 6 (rotated 90 CW), from {EMBEDDED}; a render applies it" in shown
    data = json.loads(hostplug("show", raw, "--json").stdout)
    assert (data["sidecar"], data["embedded_xmp"], data["hints"]) == (None, str(raw), {"exposure": 0.5})
    assert data["adobe_from"] == f"{raw}'s embedded XMP" and data["rating"] == 4
    info = hostplug("info", raw).stdout
    assert f"orientation       6 (rotated 90 CW), from {EMBEDDED}; the file's EXIF says 1 (normal)" in info


def test_a_malformed_packet_is_one_error_line(block: object, tmp_path: Path) -> None:
    from hostplug.thumbnail import write_thumbnail

    raw = _dng(block, tmp_path, _packet()[:-40])  # cut short, as by a tool that died while writing it
    out = tmp_path / "out.png"
    for command in (["render", raw, "-o", out, "--no-service"], ["show", raw], ["info", raw],
                    ["edit", raw, "--exposure", "1"]):
        result = CliRunner().invoke(main, [str(a) for a in command])
        assert result.exit_code == 4, (command, result.stderr)
        assert len(result.stderr.splitlines()) == 1
        assert result.stderr.startswith(f"hostplug: error: {raw}'s embedded XMP: not valid XML")
        assert "exiftool -XMP:all= FILE" in result.stderr  # what to do, where no sidecar can be fixed
    assert not out.exists() and not raw.with_name(raw.name + ".xmp").exists()
    assert write_thumbnail(raw, tmp_path / "thumb.jpg")["width"] == WIDTH  # a file browser still shows it


def test_a_packet_past_the_end_of_the_file_is_damage_not_silence(block: object, tmp_path: Path) -> None:
    """tifffile leaves out a tag whose value lies past the end of the file; the DNG reader refuses such a DNG, so
    a rotation there is never dropped unseen."""
    raw = _dng(block, tmp_path, _packet())
    data = bytearray(raw.read_bytes())
    struct.pack_into("<I", data, _ifd0_entry(data, 700) + 8, len(data) + 1000)  # the value's offset: past the end
    raw.write_bytes(bytes(data))
    assert embedded_packet(raw) is None
    result = CliRunner().invoke(main, ["render", str(raw), "-o", str(tmp_path / "out.png"), "--no-service"])
    assert result.exit_code == 3 and result.stderr.splitlines() == [
        f"hostplug: error: {raw}: damaged DNG: its XMLPacket entry cannot be read (its value lies outside the "
        "file); the file was damaged or written by a faulty tool"]


def test_the_file_browsers_thumbnail_and_a_watch_folder_turn_as_the_render_does(block: object,
                                                                               tmp_path: Path) -> None:
    import engine
    from hostplug.daemon.config import FolderConfig, OutputSpec
    from hostplug.daemon.job import Job, run_job
    from hostplug.daemon.journal import Journal
    from hostplug.thumbnail import write_thumbnail

    raw = _dng(block, tmp_path, _packet(orientation=6, exposure="0"))
    shown = write_thumbnail(raw, tmp_path / "thumb.jpg")
    assert (shown["width"], shown["height"]) == (HEIGHT, WIDTH) and _corner(tmp_path / "thumb.jpg") == "top-right"
    folder = FolderConfig(path=raw.parent, outputs=(OutputSpec(folder=tmp_path / "out", format="png", bits=8),))
    journal = Journal(tmp_path / "journal.sqlite")
    size, mtime = raw.stat().st_size, raw.stat().st_mtime_ns
    entry = journal.enqueue(raw, raw.parent, size, mtime, "content")
    done = run_job(Job(entry.id, raw, raw.parent, size, mtime, "content"), folder, engine.Recipe(), journal)
    assert done.kind == "done", done.message
    assert _corner(Path(done.outputs[0])) == "top-right"


def test_a_packet_too_large_is_refused_before_it_is_read(block: object, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.xmp import document, embedded

    assert embedded.MAX_EMBEDDED_BYTES == document.MAX_PACKET_BYTES  # one limit, written twice to keep lxml out
    raw = _dng(block, tmp_path, _packet())
    monkeypatch.setattr(embedded, "MAX_EMBEDDED_BYTES", 100)  # the real one is 16 MiB: no need to write that
    read, value = [], tifffile.TiffTag.value

    def recorded(tag: tifffile.TiffTag) -> object:
        if tag.code == 700:
            read.append(tag)
        return value.__get__(tag)

    monkeypatch.setattr(tifffile.TiffTag, "value", property(recorded))
    with pytest.raises(Exception, match=r"embedded XMP: refused, \d+ bytes is far too large for an XMP packet"):
        embedded_packet(raw)
    assert not read


def test_an_images_own_xmp_gives_its_keywords_and_rating_not_its_edits(tmp_path: Path) -> None:
    """A tester's Lightroom-keyworded JPEG was rendered without its keywords, rating and creator; its develop
    settings and rotation describe pixels that hold them already, and must not be applied again."""
    import pyexiv2
    from PIL import Image

    image = tmp_path / "kw.jpg"
    Image.new("RGB", (60, 40), (120, 110, 100)).save(image, quality=95)
    with pyexiv2.Image(str(image)) as handle:
        handle.modify_xmp({"Xmp.dc.subject": ["alpha", "beta"], "Xmp.xmp.Rating": "3",
                           "Xmp.dc.creator": ["XMP Creator"], "Xmp.crs.Exposure2012": "+2.00",
                           "Xmp.crs.WhiteBalance": "As Shot", "Xmp.tiff.Orientation": "6"})
        handle.modify_exif({"Exif.Image.Orientation": "1"})  # (exiv2 copied the XMP's into the EXIF)
    info = read_sidecar(image)
    assert info is not None and (info.rating, info.keywords) == (3, ["alpha", "beta"])
    assert info.hints == {} and info.orientation is None and sidecar_orientation(image) is None
    out = tmp_path / "out.jpg"
    result = hostplug("render", image, "-o", out)
    assert result.exit_code == 0, result.output
    exif, xmp = read_metadata(out)
    assert (xmp["Xmp.dc.subject"], xmp["Xmp.xmp.Rating"], xmp["Xmp.dc.creator"]) == (["alpha", "beta"], "3",
                                                                                     ["XMP Creator"])
    assert json.loads(xmp["Xmp.hostplug.recipe"]).get("exposure", 0.0) == 0.0 and cv2.imread(str(out)).shape[:2] \
        == (40, 60)  # not brightened, not turned


def test_an_images_unreadable_xmp_is_left_out_and_the_image_renders(tmp_path: Path) -> None:
    # an image's own XMP is read for its catalogue data only: a broken one must not stop a render that worked
    # before it was read, nor print exiv2's warning on stdout (--json)
    from PIL import Image

    image = tmp_path / "broken.jpg"
    Image.new("RGB", (60, 40), (100, 100, 100)).save(image)
    data, xmp = image.read_bytes(), b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><broken"
    image.write_bytes(data[:2] + b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp + data[2:])
    result = hostplug("render", image, "-o", tmp_path / "out.jpg", "--json", "--no-service")
    assert result.exit_code == 0 and json.loads(result.stdout)["output"] == str(tmp_path / "out.jpg")
