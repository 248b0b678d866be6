"""A rotation the photographer set in another program's sidecar (Lightroom's tiff:Orientation, darktable's
orientation module) is what hostplug renders: it wins over the raw's EXIF, is applied once, survives hostplug's own
edits and re-renders, and ``show``/``info`` say where it came from."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import engine
from engine.errors import RecipeError, SidecarError
from engine.orientation import FROM_FILE, Orientation
from engine.training.synthetic import WAVELENGTHS, Scene, camera_from_colour, illuminant, render_raw, write_dng
from engine.xmp.document import parse_packet
from engine.xmp.hints import DARKTABLE_FLIP, orientation
from engine.xmp.sidecar import read_sidecar, sidecar_orientation
from hostplug.cli import main
from tests.conftest import REPO, SHARED, hostplug, need, read_metadata
from tests.test_service import runtime as runtime  # noqa: F401 - the fixture, re-used

DARKTABLE_XMP = SHARED / "sidecars" / "darktable-4.2.1-colorchart.dng.xmp"
HEIGHT, WIDTH = 120, 180  # stored landscape; a white block in the stored image's top-left corner

_LIGHTROOM = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              '<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
              'xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" tiff:Orientation="{value}" '
              'crs:Exposure2012="+0.10"/></rdf:RDF></x:xmpmeta>')


def _darktable(params: str, enabled: str = "1") -> bytes:
    """The darktable 4.2.1 sidecar of ../shared, its orientation module set to ``params``."""
    text = need(DARKTABLE_XMP).read_bytes()
    flip = b'darktable:operation="flip" darktable:enabled="1" darktable:modversion="2" darktable:params="ffffffff"'
    assert flip in text
    return text.replace(flip, flip.replace(b'"ffffffff"', f'"{params}"'.encode())
                        .replace(b'enabled="1"', f'enabled="{enabled}"'.encode()))


def _turned(packet: bytes | str, name: str = "IMG_0001.CR2.xmp", exif: int = 1) -> Orientation | None:
    data = packet.encode() if isinstance(packet, str) else packet
    return orientation(parse_packet(data, name), name, lambda: exif)


@pytest.fixture(scope="module")
def block_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small computed raw, grey with a white block in the top-left corner of the stored image, EXIF 1."""
    index = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    index[10:40, 10:50] = 1
    n = len(WAVELENGTHS)
    scene = Scene(np.stack([np.full(n, 0.18), np.full(n, 0.9)]), ("grey", "white"), (False, False), index,
                  np.ones((HEIGHT, WIDTH), dtype=np.float32))
    raw = render_raw(camera_from_colour(), illuminant("D55"), scene, noise=False)
    folder = tmp_path_factory.mktemp("raws")
    for exif in (1, 6):
        write_dng(folder / f"exif{exif}.dng", raw, make="hostplug", model="Orientation test", iso=100,
                  exposure_time=0.01, f_number=8.0, orientation=exif)
    return folder


def _shot(block_raw: Path, tmp_path: Path, exif: int = 1) -> Path:
    """A copy of the block raw with EXIF orientation ``exif``, alone in a folder of its own."""
    raw = tmp_path / "shots" / "IMG_0001.dng"
    raw.parent.mkdir(exist_ok=True)
    raw.write_bytes((block_raw / f"exif{exif}.dng").read_bytes())
    return raw


def _corner(path: Path) -> str:
    """Which corner of the picture holds the white block."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float64)
    corners = {"top-left": image[:45, :45], "top-right": image[:45, -45:], "bottom-left": image[-45:, :45],
               "bottom-right": image[-45:, -45:]}
    means = {name: float(area.mean()) for name, area in corners.items()}
    brightest = max(means, key=means.__getitem__)
    assert means[brightest] > sorted(means.values())[-2] + 20, means  # one corner, clearly
    return brightest


def _render(raw: Path, out: Path, *options: object) -> dict:
    result = hostplug("render", raw, "-o", out, "--bits", 8, "--no-service", "--json", *options)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# --- what the sidecars say ---------------------------------------------------------------------------------------

def test_lightroom_tiff_orientation_is_read() -> None:
    found = _turned(_LIGHTROOM.format(value=6), "/photos/IMG_0001.xmp")
    assert found == Orientation(6, "IMG_0001.xmp (tiff:Orientation)")
    assert found.describe() == "6 (rotated 90 CW), from IMG_0001.xmp (tiff:Orientation)"
    element_form = _LIGHTROOM.replace(' tiff:Orientation="{value}"', "").replace(
        "/></rdf:RDF>", "><tiff:Orientation>8</tiff:Orientation></rdf:Description></rdf:RDF>")
    assert _turned(element_form.format(value=0)).value == 8


def test_the_shared_darktable_sidecar_leaves_the_orientation_to_the_exif() -> None:
    # darktable's default orientation module says -1, "as the EXIF says": no opinion of its own.
    assert _turned(need(DARKTABLE_XMP).read_bytes()) is None


@pytest.mark.parametrize(("params", "expected"), [(f"0{v}000000", exif) for v, exif in DARKTABLE_FLIP.items()])
def test_darktables_orientation_module_maps_to_exif(params: str, expected: int) -> None:
    # Checked against darktable 4.2.1's renders of the colour chart raw: 05000000 turns it clockwise (EXIF 6).
    found = _turned(_darktable(params))
    assert found == Orientation(expected, "IMG_0001.CR2.xmp (darktable history: flip)")


def test_darktables_compressed_switched_off_and_undone_orientations() -> None:
    compressed = "gz12" + base64.b64encode(zlib.compress(bytes.fromhex("06000000"))).decode()
    assert _turned(_darktable(compressed)).value == 8
    # switched off, darktable shows the sensor's orientation whatever the EXIF says
    assert _turned(_darktable("05000000", enabled="0")) == Orientation(
        1, "IMG_0001.CR2.xmp (darktable history: flip), switched off")
    undone = _darktable("05000000").replace(b'darktable:history_end="10"', b'darktable:history_end="9"')
    assert _turned(undone) is None  # the flip is the 10th item: undone in darktable's history


@pytest.mark.parametrize("value", ["9", "0", "Rotate 90 CW", "", "6.5"])
def test_a_tiff_orientation_that_is_none_is_one_error_line(value: str) -> None:
    with pytest.raises(SidecarError, match=rf"IMG_0001.CR2.xmp: tiff:Orientation '{value}' is not an EXIF "
                                           r"orientation \(a whole number from 1 to 8\)"):
        _turned(_LIGHTROOM.format(value=value))


@pytest.mark.parametrize("params", ["09000000", "0500", "zz", "gz12AAAA"])
def test_darktable_params_that_are_no_orientation_are_refused(params: str) -> None:
    with pytest.raises(SidecarError, match=r"darktable's orientation \(flip\) params .* are not an orientation"):
        _turned(_darktable(params))
    with pytest.raises(SidecarError, match=r"params 'ffffffff' are not an orientation \(one of 0 to 7 in module "
                                           r"version 1\)"):
        _turned(_version_1("ffffffff"))  # "as the EXIF says" came with version 2
    with pytest.raises(SidecarError, match="module version '3', which hostplug does not know"):
        _turned(_version_1("05000000").replace(b'modversion="1"', b'modversion="3"'))


def _version_1(params: str) -> bytes:
    """The darktable sidecar with its orientation module of version 1 (darktable 1.0), set to ``params``."""
    return _darktable(params).replace(b'darktable:modversion="2" darktable:params="' + params.encode(),
                                      b'darktable:modversion="1" darktable:params="' + params.encode())


# darktable's version 1 held the flip on top of the raw's EXIF orientation; darktable's legacy_params makes it
# absolute. (version 1 params, the raw's EXIF) -> the EXIF orientation darktable shows: 5 turns clockwise and 6
# counter-clockwise, as in version 2, so a second clockwise turn of a raw held clockwise is upside down.
@pytest.mark.parametrize(("params", "exif", "expected"), [
    ("00000000", 1, 1), ("00000000", 6, 6), ("00000000", 3, 3),  # no flip of the photographer's: the EXIF's
    ("05000000", 1, 6), ("06000000", 1, 8), ("03000000", 1, 3), ("01000000", 1, 4), ("02000000", 1, 2),
    ("05000000", 6, 3), ("06000000", 6, 1), ("05000000", 8, 1), ("05000000", 3, 8), ("02000000", 6, 7),
])
def test_darktables_version_1_orientation_is_converted_as_darktable_does(params: str, exif: int,
                                                                       expected: int) -> None:
    found = _turned(_version_1(params), exif=exif)
    assert found == Orientation(expected, "IMG_0001.CR2.xmp (darktable history: flip), version 1")


def test_darktables_version_1_asks_for_the_raws_exif_only_when_it_is_there() -> None:
    asked = []
    tree = parse_packet(_darktable("05000000"), "x.xmp")
    assert orientation(tree, "x.xmp", lambda: asked.append(1) or 1).value == 6 and not asked


def test_the_darktable_sidecar_name_is_read_before_adobes(tmp_path: Path) -> None:
    raw = tmp_path / "IMG_0001.CR2"
    raw.write_bytes(b"")
    adobe = tmp_path / "IMG_0001.xmp"
    adobe.write_text(_LIGHTROOM.format(value=8))
    assert sidecar_orientation(raw) == Orientation(8, "IMG_0001.xmp (tiff:Orientation)")
    (tmp_path / "IMG_0001.CR2.xmp").write_bytes(_darktable("ffffffff"))  # darktable: as the EXIF says
    assert sidecar_orientation(raw).value == 8  # the first sidecar that sets one
    (tmp_path / "IMG_0001.CR2.xmp").write_bytes(_darktable("05000000"))
    assert read_sidecar(raw).orientation.value == sidecar_orientation(raw).value == 6


# --- renders -----------------------------------------------------------------------------------------------------

def test_a_lightroom_rotation_renders_upright_and_is_recorded(block_raw: Path, tmp_path: Path) -> None:
    raw = _shot(block_raw, tmp_path)
    raw.with_suffix(".xmp").write_text(_LIGHTROOM.format(value=6))  # Adobe's IMG_0001.xmp: rotated clockwise
    out = tmp_path / "out.png"
    result = _render(raw, out)
    image = cv2.imread(str(out))
    assert image.shape[:2] == (WIDTH, HEIGHT)  # portrait now
    assert _corner(out) == "top-right"  # turned clockwise, not counter-clockwise
    exif, xmp = read_metadata(out)
    assert exif.get("Exif.Image.Orientation", "1") == "1"  # no viewer turns it again
    assert xmp.get("Xmp.tiff.Orientation", "1") == "1"
    assert json.loads(xmp["Xmp.hostplug.decided"])["orientation"] == result["orientation"] == {
        "value": 6, "meaning": "rotated 90 CW", "from": "IMG_0001.xmp (tiff:Orientation)"}


def test_the_file_browsers_thumbnail_turns_as_the_render_does(block_raw: Path, tmp_path: Path) -> None:
    from hostplug.thumbnail import write_thumbnail

    raw = _shot(block_raw, tmp_path)
    assert write_thumbnail(raw, tmp_path / "before.jpg")["width"] == WIDTH
    assert _corner(tmp_path / "before.jpg") == "top-left"
    raw.with_suffix(".xmp").write_text(_LIGHTROOM.format(value=6))
    turned = write_thumbnail(raw, tmp_path / "turned.jpg")
    assert (turned["width"], turned["height"]) == (HEIGHT, WIDTH) and _corner(tmp_path / "turned.jpg") == "top-right"
    raw.with_suffix(".xmp").write_text(_LIGHTROOM.format(value=9))  # a render refuses it; a thumbnail still shows
    assert _corner(Path(write_thumbnail(raw, tmp_path / "bad.jpg")["output"])) == "top-left"


@pytest.mark.parametrize("kind", ["jpeg", "jpeg with a tag of 0", "bitmap"])
def test_a_stored_preview_is_turned_once_by_the_raws_or_the_sidecars(kind: str, monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    """Embedded previews are kept as the sensor stored them (a JPEG without an orientation of its own, a bitmap):
    the thumbnail turns them once, by the sidecar's orientation or else by the raw's."""
    import io
    from types import SimpleNamespace

    import rawpy
    from PIL import Image

    from hostplug.thumbnail import write_thumbnail

    stored = np.full((HEIGHT, WIDTH, 3), 60, dtype=np.uint8)
    stored[:45, :45] = 250  # the block in the stored image's top-left corner
    data, tag = io.BytesIO(), Image.Exif()
    if kind == "jpeg with a tag of 0":  # no orientation: the raw's decides
        tag[0x0112] = 0
    Image.fromarray(stored).save(data, format="JPEG", quality=95, exif=tag.tobytes())
    thumb = SimpleNamespace(format=rawpy.ThumbFormat.JPEG, data=data.getvalue()) if kind != "bitmap" else \
        SimpleNamespace(format=rawpy.ThumbFormat.BITMAP, data=stored)

    class Raw:  # a raw held upright: LibRaw's flip 6, EXIF 6 (turn clockwise to view)
        sizes = SimpleNamespace(flip=6, height=HEIGHT, width=WIDTH)

        def __enter__(self) -> Raw:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def extract_thumb(self) -> SimpleNamespace:
            return thumb

    monkeypatch.setattr(rawpy, "imread", lambda path: Raw())
    raw = tmp_path / "IMG_0001.ARW"
    raw.write_bytes(b"raw")
    shown = write_thumbnail(raw, tmp_path / "exif.jpg")
    assert (shown["width"], shown["height"]) == (HEIGHT, WIDTH) and _corner(tmp_path / "exif.jpg") == "top-right"
    raw.with_suffix(".xmp").write_text(_LIGHTROOM.format(value=3))  # turned to upside down in Lightroom
    shown = write_thumbnail(raw, tmp_path / "sidecar.jpg")
    assert (shown["width"], shown["height"]) == (WIDTH, HEIGHT) and _corner(tmp_path / "sidecar.jpg") == "bottom-right"


def test_the_sidecar_wins_over_the_raws_exif_and_is_applied_once(block_raw: Path, tmp_path: Path) -> None:
    raw = _shot(block_raw, tmp_path, exif=6)  # the camera was held upright...
    _render(raw, tmp_path / "exif.png")
    assert _corner(tmp_path / "exif.png") == "top-right"  # EXIF 6 alone turns it clockwise
    raw.with_name(raw.name + ".xmp").write_bytes(_darktable("00000000"))  # ...darktable turned it back
    out = tmp_path / "darktable.png"
    assert _render(raw, out)["orientation"]["from"] == "IMG_0001.dng.xmp (darktable history: flip)"
    assert cv2.imread(str(out)).shape[:2] == (HEIGHT, WIDTH) and _corner(out) == "top-left"


def test_darktables_version_1_orientation_turns_on_top_of_the_raws_exif(block_raw: Path, tmp_path: Path) -> None:
    raw = _shot(block_raw, tmp_path, exif=6)  # the camera was held upright; darktable 1.0 turned it clockwise
    raw.with_name(raw.name + ".xmp").write_bytes(_version_1("05000000"))
    out = tmp_path / "out.png"
    assert _render(raw, out)["orientation"]["value"] == 3  # twice clockwise: upside down
    assert cv2.imread(str(out)).shape[:2] == (HEIGHT, WIDTH) and _corner(out) == "bottom-right"


def _darktable_1x(flip_params: str, *, flip_enabled: str = "1", history_end: int = 2, container: str = "Seq") -> str:
    """A sidecar as darktable 1.x wrote it (darktable:xmp_version 1): the history as parallel arrays, one per
    field, here a flip (module version 1, relative to the EXIF) then a sharpen; rdf:Bag in the oldest ones."""
    def array(name: str, *items: str) -> str:
        lis = "".join(f"<rdf:li>{item}</rdf:li>" for item in items)
        return f"<darktable:{name}><rdf:{container}>{lis}</rdf:{container}></darktable:{name}>"

    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2"><rdf:RDF '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:darktable="http://darktable.sf.net/" xmp:Rating="2" '
            f'darktable:xmp_version="1" darktable:raw_params="0" darktable:history_end="{history_end}">'
            + array("history_modversion", "1", "1") + array("history_enabled", flip_enabled, "1")
            + array("history_operation", "flip", "sharpen")
            + array("history_params", flip_params, "000000400000003f0000003f")
            + "</rdf:Description></rdf:RDF></x:xmpmeta>")


def test_a_darktable_1x_sidecar_is_read_from_its_parallel_arrays() -> None:
    origin = "IMG_0001.CR2.xmp (darktable history: flip)"
    assert _turned(_darktable_1x("05000000")) == Orientation(6, origin + ", version 1")
    assert _turned(_darktable_1x("05000000", container="Bag"), exif=6) == Orientation(3, origin + ", version 1")
    assert _turned(_darktable_1x("05000000", flip_enabled="0"), exif=6) == Orientation(1, origin + ", switched off")
    assert _turned(_darktable_1x("05000000", history_end=0), exif=6) is None  # undone: the EXIF's
    with pytest.raises(SidecarError, match=r"params '0900' are not an orientation"):
        _turned(_darktable_1x("0900"))


def test_a_darktable_1x_rotation_renders_and_survives_an_edit(block_raw: Path, tmp_path: Path) -> None:
    raw = _shot(block_raw, tmp_path)
    sidecar = raw.with_name(raw.name + ".xmp")
    sidecar.write_text(_darktable_1x("05000000"))
    out = tmp_path / "out.png"
    assert _render(raw, out)["orientation"]["value"] == 6
    assert cv2.imread(str(out)).shape[:2] == (WIDTH, HEIGHT) and _corner(out) == "top-right"
    assert hostplug("edit", raw, "--exposure", "0.2").exit_code == 0
    kept = sidecar.read_text()
    assert "<rdf:li>flip</rdf:li>" in kept and "<rdf:li>05000000</rdf:li>" in kept
    assert _render(raw, tmp_path / "again.png")["orientation"]["value"] == 6


def test_the_exif_orientation_is_read_from_the_header(block_raw: Path, tmp_path: Path) -> None:
    from PIL import Image

    from engine.io.probe import exif_orientation

    assert (exif_orientation(block_raw / "exif6.dng"), exif_orientation(block_raw / "exif1.dng")) == (6, 1)
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (8, 4)).save(tmp_path / "turned.jpg", exif=exif.tobytes())
    assert exif_orientation(tmp_path / "turned.jpg") == 8
    (tmp_path / "broken.cr2").write_bytes(b"not a raw")
    assert exif_orientation(tmp_path / "broken.cr2") == 1


def test_a_darktable_rotation_renders_counter_clockwise(block_raw: Path, tmp_path: Path) -> None:
    raw = _shot(block_raw, tmp_path)
    raw.with_name(raw.name + ".xmp").write_bytes(_darktable("06000000"))
    out = tmp_path / "out.png"
    _render(raw, out)
    assert cv2.imread(str(out)).shape[:2] == (WIDTH, HEIGHT) and _corner(out) == "bottom-left"


def test_rerender_keeps_the_orientation_the_output_applied(block_raw: Path, tmp_path: Path) -> None:
    raw = _shot(block_raw, tmp_path)
    adobe = raw.with_suffix(".xmp")
    adobe.write_text(_LIGHTROOM.format(value=6))
    out = tmp_path / "out.png"
    _render(raw, out)
    adobe.unlink()  # what the output applied is reproduced, as its recipe is
    result = hostplug("rerender", out, "--exposure", "0.3", "--json")
    assert result.exit_code == 0, result.stderr
    again = Path(json.loads(result.stdout)["output"])
    assert cv2.imread(str(again)).shape[:2] == (WIDTH, HEIGHT) and _corner(again) == "top-right"
    assert read_metadata(again)[0].get("Exif.Image.Orientation", "1") == "1"
    assert json.loads(read_metadata(again)[1]["Xmp.hostplug.decided"])["orientation"]["value"] == 6


def test_render_with_an_outputs_recipe_keeps_the_orientation_it_applied_to_the_same_raw(block_raw: Path,
                                                                                          tmp_path: Path) -> None:
    # `render RAW --recipe OUTPUT` is the documented way to reproduce an output: it took the orientation from the
    # sidecar of now (gone here), where the output had applied Lightroom's turn
    raw = _shot(block_raw, tmp_path)
    adobe = raw.with_suffix(".xmp")
    adobe.write_text(_LIGHTROOM.format(value=8))
    out = tmp_path / "out.png"
    _render(raw, out)
    adobe.unlink()
    again = tmp_path / "again.png"
    _render(raw, again, "--recipe", out)
    assert cv2.imread(str(again)).shape[:2] == (WIDTH, HEIGHT) and _corner(again) == "bottom-left"
    (tmp_path / "other").mkdir()
    other = _shot(block_raw, tmp_path / "other", exif=6)  # another raw takes the recipe, and keeps its own turn
    _render(other, tmp_path / "other.png", "--recipe", out)
    assert _corner(tmp_path / "other.png") == "top-right"


def test_hostplug_edits_keep_the_other_programs_orientation(block_raw: Path, tmp_path: Path) -> None:
    raw = _shot(block_raw, tmp_path)
    ours = raw.with_name(raw.name + ".xmp")
    ours.write_text(_LIGHTROOM.format(value=8))  # a digiKam/exiftool sidecar under darktable's name
    assert hostplug("edit", raw, "--exposure", "0.5").exit_code == 0
    text = ours.read_text()
    assert 'tiff:Orientation="8"' in text and "hostplug:exposure" in text
    assert "orientation" not in text.lower().replace("tiff:orientation", "")  # no setting of our own
    out = tmp_path / "out.png"
    assert _render(raw, out)["recipe"]["exposure"] == 0.5  # our recipe, and their rotation
    assert _corner(out) == "bottom-left"


def test_a_bad_orientation_refuses_the_render_in_one_line(block_raw: Path, tmp_path: Path) -> None:
    raw = _shot(block_raw, tmp_path)
    raw.with_suffix(".xmp").write_text(_LIGHTROOM.format(value="9"))
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["render", str(raw), "-o", str(out), "--no-service"])
    assert result.exit_code == 4 and not out.exists()
    assert result.stderr.splitlines() == ["hostplug: error: " + str(raw.with_suffix(".xmp")) + ": tiff:Orientation "
                                          "'9' is not an EXIF orientation (a whole number from 1 to 8)"]


def test_show_and_info_say_which_orientation_applies_and_why(block_raw: Path, tmp_path: Path) -> None:
    raw = _shot(block_raw, tmp_path)
    assert "orientation       1 (normal), from the file's EXIF\n" in hostplug("info", raw).stdout
    raw.with_suffix(".xmp").write_text(_LIGHTROOM.format(value=6))
    shown = hostplug("show", raw).stdout
    assert ("  orientation: 6 (rotated 90 CW), from IMG_0001.xmp (tiff:Orientation); a render applies it, not the "
            "raw's EXIF") in shown
    assert json.loads(hostplug("show", raw, "--json").stdout)["orientation"]["value"] == 6
    info = hostplug("info", raw).stdout
    assert ("orientation       6 (rotated 90 CW), from IMG_0001.xmp (tiff:Orientation); the file's EXIF says 1 "
            "(normal)") in info
    applied = json.loads(hostplug("info", raw, "--json").stdout)["orientation"]
    assert applied == {"exif": 1, "meaning": "normal", "applied": {
        "value": 6, "meaning": "rotated 90 CW", "from": "IMG_0001.xmp (tiff:Orientation)"}}
    raw.with_suffix(".xmp").write_text(_LIGHTROOM.format(value="text"))
    assert hostplug("show", raw).exit_code == 4 and hostplug("info", raw).exit_code == 4


def test_the_library_render_takes_an_orientation(block_raw: Path) -> None:
    source = engine.open(block_raw / "exif6.dng")
    assert engine.render(source).notes["orientation"] == {"value": 6, "meaning": "rotated 90 CW", "from": FROM_FILE}
    turned = engine.render(source, orientation=Orientation(8, "a test"))
    assert turned.pixels.shape[:2] == (WIDTH, HEIGHT) and turned.orientation == Orientation(8, "a test")
    with pytest.raises(RecipeError, match="must be an engine.orientation.Orientation, not int"):
        engine.render(source, orientation=6)  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match="orientation 9 is not an EXIF orientation"):
        Orientation(9)


def test_a_watch_folder_renders_the_rotation_and_again_when_it_changes(block_raw: Path, tmp_path: Path) -> None:
    from hostplug.daemon.config import FolderConfig, OutputSpec
    from hostplug.daemon.job import Job, run_job
    from hostplug.daemon.journal import Journal

    hot, out = tmp_path / "hot", tmp_path / "out"
    hot.mkdir()
    raw = _shot(block_raw, hot)
    raw.with_suffix(".xmp").write_text(_LIGHTROOM.format(value=6))
    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=out, format="png", bits=8),))
    journal = Journal(tmp_path / "journal.sqlite")
    from engine.filehash import file_sha256

    size, mtime, sha = raw.stat().st_size, raw.stat().st_mtime_ns, file_sha256(raw)  # (the outputs record it)
    entry = journal.enqueue(raw, raw.parent, size, mtime, sha)
    job = Job(entry.id, raw, raw.parent, size, mtime, sha)
    done = run_job(job, folder, engine.Recipe(), journal)
    assert done.kind == "done", done.message
    assert _corner(Path(done.outputs[0])) == "top-right"
    again = Job(entry.id, raw, raw.parent, size, mtime, sha, sha, done.recipe_hash, done.outputs)
    assert run_job(again, folder, engine.Recipe(), journal).kind == "unchanged"
    raw.with_suffix(".xmp").write_text(_LIGHTROOM.format(value=8))  # turned the other way in Lightroom
    turned = run_job(again, folder, engine.Recipe(), journal)
    assert turned.kind == "done" and _corner(Path(turned.outputs[0])) == "bottom-left"


def test_the_gimp_dialogs_preview_turns_as_the_render_does(block_raw: Path, tmp_path: Path, runtime: Path,  # noqa: F811
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from hostplug.service import client

    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the service runs this checkout, whatever copy is installed
    raw = _shot(block_raw, tmp_path)
    raw.with_suffix(".xmp").write_text(_LIGHTROOM.format(value=6))
    answer = client.preview(raw, recipe={"style": "natural"}, long_edge=90)
    assert answer is not None and (answer["width"], answer["height"]) == (60, 90)  # portrait, as the render
    shown = np.frombuffer(answer["payload"], dtype=np.uint8).reshape(90, 60, 3).mean(axis=2)
    assert shown[:20, -20:].mean() > shown[:20, :20].mean() + 20  # the block top right: turned clockwise
