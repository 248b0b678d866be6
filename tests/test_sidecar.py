"""XMP sidecars: found by darktable's and Adobe's names, read safely, merged without harming anyone's data."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from engine import Recipe, StageSettings
from engine.errors import RecipeError, SidecarError
from engine.output.metadata import XMP_NS_URI
from engine.xmp import recipe_properties as recipe_xmp
from engine.xmp.sidecar import (
    catalogue_xmp,
    read_sidecar,
    recipe_for,
    update_recipe,
    write_recipe,
)
from engine.xmp.sidecar_files import find_duplicates, find_sidecar, sidecar_path
from tests.conftest import need

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = REPO.parent / "shared"
CANON = SHARED / "rawsamples" / "canon_eos550d_magiclantern__tinydng_colorchart.dng"
DARKTABLE_XMP = SHARED / "sidecars" / "darktable-4.2.1-colorchart.dng.xmp"
ADOBE_XMP = DATA / "adobe-camera-raw.xmp"
V1_XMP = DATA / "hostplug-schema-v1.xmp"
V2_XMP = DATA / "hostplug-schema-v2.xmp"
V3_XMP = DATA / "hostplug-schema-v3.xmp"

MALFORMED = {p.stem: p.read_bytes() for p in sorted((DATA / "malformed").glob("*.xmp"))}


def _raw(folder: Path, name: str = "IMG_0001.CR2") -> Path:
    """An (empty) raw file: sidecar code never reads the raw itself."""
    raw = folder / name
    raw.write_bytes(b"")
    return raw


def _between(text: bytes, start: bytes, end: bytes) -> bytes:
    return text[text.index(start):text.index(end) + len(end)]


def _other_namespaces(data: bytes) -> list[tuple[str, dict[str, str], str]]:
    """Every element outside hostplug's namespace, with its non-hostplug attributes and its text, in order."""
    root = etree.fromstring(data)
    found = []
    for element in root.iter(etree.Element):
        if element.tag.startswith(f"{{{XMP_NS_URI}}}"):
            continue
        attributes = {k: v for k, v in element.attrib.items() if not k.startswith(f"{{{XMP_NS_URI}}}")}
        if element.tag.endswith("}Description") and set(attributes) <= {"{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"}:
            continue  # our own rdf:Description
        found.append((element.tag, attributes, (element.text or "").strip()))
    return found


def test_sidecar_prefers_the_darktable_name_and_reads_adobes(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    assert find_sidecar(raw) is None and read_sidecar(raw) is None
    (tmp_path / "IMG_0001.xmp").write_bytes(ADOBE_XMP.read_bytes())
    assert find_sidecar(raw) == tmp_path / "IMG_0001.xmp"
    (tmp_path / "IMG_0001.CR2.xmp").write_bytes(V1_XMP.read_bytes())
    assert find_sidecar(raw) == tmp_path / "IMG_0001.CR2.xmp"
    assert sidecar_path(raw) == tmp_path / "IMG_0001.CR2.xmp"


def test_adobe_s_sidecar_name_is_read_only_where_it_is_no_other_raw_s(tmp_path: Path) -> None:
    # a tester: A.ARW.dng read A.ARW.xmp, hostplug's sidecar of A.ARW; IMG.dng took Lightroom's IMG.xmp of the
    # IMG.ARW beside it (over its own embedded edit)
    for name in ("A.ARW", "A.ARW.dng", "A.ARW.xmp", "IMG.ARW", "IMG.dng", "IMG.xmp", "B.CR2", "B.NEF", "B.xmp",
                 "C.dng", "C.xmp"):
        (tmp_path / name).write_bytes(b"")
    assert find_sidecar(tmp_path / "A.ARW.dng") is None and find_sidecar(tmp_path / "A.ARW") == tmp_path / "A.ARW.xmp"
    assert find_sidecar(tmp_path / "IMG.dng") is None and find_sidecar(tmp_path / "IMG.ARW") == tmp_path / "IMG.xmp"
    assert find_sidecar(tmp_path / "B.CR2") is None and find_sidecar(tmp_path / "B.NEF") is None  # whose? no one's
    assert find_sidecar(tmp_path / "C.dng") == tmp_path / "C.xmp"  # a DNG alone keeps Adobe's name
    (tmp_path / "C").mkdir()  # a reviewer's: a folder named like the stem took the DNG's own sidecar away
    assert find_sidecar(tmp_path / "C.dng") == tmp_path / "C.xmp"


def test_a_packet_holding_only_a_crop_leaves_the_hints_to_the_next_one(tmp_path: Path) -> None:
    # a reviewer: a sidecar holding only Lightroom's crop hid the exposure of Adobe's sidecar after it
    raw = tmp_path / "IMG.dng"
    raw.write_bytes(b"")
    crs = 'xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"'
    packet = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              '<rdf:Description rdf:about="" {}/></rdf:RDF></x:xmpmeta>')
    (tmp_path / "IMG.dng.xmp").write_text(packet.format(f'{crs} crs:HasCrop="True" crs:CropTop="0.1"'))
    (tmp_path / "IMG.xmp").write_text(packet.format(f'{crs} crs:ProcessVersion="11.0" crs:Exposure2012="+1.50"'))
    assert read_sidecar(raw).hints == {"exposure": 1.5}


def test_darktable_duplicates_are_recognised(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    for name in ("IMG_0001_02.CR2.xmp", "IMG_0001_01.CR2.xmp", "IMG_0001.CR2.xmp", "IMG_0002_01.CR2.xmp",
                 "IMG_0001_01.NEF.xmp"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_duplicates(raw)] == ["IMG_0001_01.CR2.xmp", "IMG_0001_02.CR2.xmp"]


# Pinned photofinish operators, the smallest a recipe may hold (engine.operators_numpy.check_pinned).
PINNED = {"gain_ev": 0.1, "knee": 0.8, "tone": [1.0, 0.0, 0.0], "local_tone": [[[[[0.0]]]]],
          "chroma": [[[[0.0]], [[0.0]]]], "gamma": 2.2}

def test_recipe_round_trips_through_a_new_sidecar(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    recipe = Recipe(exposure=0.3, temperature=5200, wb="custom", contrast=-12.5, sharpening=40,
                    stages={"denoise": StageSettings(enabled=False),
                            "photofinish": StageSettings(params={"operators": PINNED})})
    path = write_recipe(raw, recipe)
    assert path == tmp_path / "IMG_0001.CR2.xmp"
    assert read_sidecar(raw).recipe == recipe
    text = path.read_text()
    # readable, one per setting
    assert f'hostplug:schemaVersion="{recipe_xmp.SCHEMA_VERSION}"' in text and 'hostplug:exposure="0.3"' in text
    assert 'hostplug:temperature="5200"' in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IMG_0001.CR2", path.name]  # no lock file left


def test_writing_again_replaces_our_recipe_instead_of_adding_one(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    write_recipe(raw, Recipe(exposure=1.0, sharpening=10))
    write_recipe(raw, Recipe(exposure=-0.5))
    text = sidecar_path(raw).read_text()
    assert text.count("schemaVersion") == 1 and "sharpening" not in text
    assert read_sidecar(raw).recipe == Recipe(exposure=-0.5)


def test_sidecar_keeps_darktable_history_and_tags(tmp_path: Path) -> None:
    raw = _raw(tmp_path, "colorchart.dng")
    sidecar = tmp_path / "colorchart.dng.xmp"
    original = need(DARKTABLE_XMP).read_bytes()
    sidecar.write_bytes(original)
    info = read_sidecar(raw)
    assert (info.recipe, info.rating, info.labels, info.keywords) == (None, 4, ["Red"], ["client-a", "studio"])
    write_recipe(raw, Recipe(exposure=0.3))
    written = sidecar.read_bytes()
    for start, end in ((b"<darktable:history>", b"</darktable:history>"),
                       (b"<darktable:colorlabels>", b"</darktable:masks_history>")):
        assert _between(written, start, end) == _between(original, start, end)  # byte for byte
    assert _other_namespaces(written) == _other_namespaces(original)
    assert read_sidecar(raw).recipe == Recipe(exposure=0.3)
    assert read_sidecar(raw).rating == 4


def test_sidecar_keeps_adobe_lightroom_and_digikam_data(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    original = ADOBE_XMP.read_bytes()
    sidecar = tmp_path / "IMG_0001.CR2.xmp"  # Adobe data in the file we write, so ours is merged into it
    sidecar.write_bytes(original)
    write_recipe(raw, Recipe(style_strength=0.5))
    written = sidecar.read_bytes()
    assert _between(written, b"<dc:subject>", b"</crs:ToneCurvePV2012>") == \
        _between(original, b"<dc:subject>", b"</crs:ToneCurvePV2012>")  # byte for byte
    assert _other_namespaces(written) == _other_namespaces(original)
    for attribute in re.findall(rb'(?:crs|xmp|tiff|exif|aux):\w+="[^"]*"', original):
        assert attribute in written


def test_windows_line_ends_cdata_and_a_utf16_declaration_are_written_back(tmp_path: Path) -> None:
    # a tester: an edit turned every CRLF of a Windows-written sidecar into LF, a CDATA section into escaped text,
    # and dropped a UTF-16 file's XML declaration
    raw = _raw(tmp_path)
    sidecar = tmp_path / "IMG_0001.CR2.xmp"
    sidecar.write_bytes(ADOBE_XMP.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    write_recipe(raw, Recipe(contrast=5))
    written = sidecar.read_bytes()
    assert written.count(b"\n") > 10 and written.count(b"\n") == written.count(b"\r\n")
    sidecar.write_bytes(b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf'
                        b'-syntax-ns#"><rdf:Description rdf:about="" xmlns:acme="http://e.com/a/"><acme:note><![CDATA['
                        b'a <b> & c]]></acme:note></rdf:Description></rdf:RDF></x:xmpmeta>')
    write_recipe(raw, Recipe(contrast=6))
    assert b"<acme:note><![CDATA[a <b> & c]]></acme:note>" in sidecar.read_bytes()
    sidecar.write_bytes('<?xml version="1.0" encoding="UTF-16"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
                        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>\n'.encode("utf-16"))
    write_recipe(raw, Recipe(contrast=7))
    assert sidecar.read_bytes().startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<x:xmpmeta')
    assert read_sidecar(raw).recipe.contrast == 7


def test_our_properties_merged_into_another_description_are_replaced_in_place(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    merged = V1_XMP.read_bytes().replace(
        b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="2"/>', b""
    ).replace(b'xmlns:hostplug="http://ns.hostplug.org/xmp/1.0/"',
              b'xmlns:hostplug="http://ns.hostplug.org/xmp/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
              b'xmp:Rating="2"')  # as exiv2 writes it after darktable rewrote the file: one description
    (tmp_path / "IMG_0001.CR2.xmp").write_bytes(merged)
    write_recipe(raw, Recipe(exposure=1.5))
    written = (tmp_path / "IMG_0001.CR2.xmp").read_bytes()
    assert written.count(b"rdf:Description ") == 1 and written.count(b"schemaVersion") == 1
    assert read_sidecar(raw).recipe == Recipe(exposure=1.5) and read_sidecar(raw).rating == 2


def test_adobe_basic_settings_become_hints(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    (tmp_path / "IMG_0001.xmp").write_bytes(ADOBE_XMP.read_bytes())
    info = read_sidecar(raw)
    assert info.recipe is None
    assert info.hints == {
        "exposure": 0.45, "contrast": 18.0, "highlights": -42 + 0.5 * 10, "shadows": 35 + 0.5 * -8,
        "vibrance": 20.0, "saturation": -5.0, "wb": "custom", "temperature": 5600.0, "tint": 12.0,
    }
    assert (info.rating, info.labels, info.keywords) == (3, ["Green"], ["wedding", "Anna & Ben"])
    recipe = recipe_for(raw, Recipe(style_strength=0.7, exposure=2.0))
    assert (recipe.style_strength, recipe.exposure, recipe.temperature, recipe.wb) == (0.7, 0.45, 5600.0, "custom")


@pytest.mark.parametrize(("balance", "expected"), [("As Shot", "as-shot"), ("Auto", "auto"), ("Daylight", "custom")])
def test_adobe_white_balance_modes(tmp_path: Path, balance: str, expected: str) -> None:
    raw = _raw(tmp_path)
    (tmp_path / "IMG_0001.xmp").write_bytes(ADOBE_XMP.read_bytes().replace(b'"Custom"', f'"{balance}"'.encode()))
    recipe = recipe_for(raw)
    assert recipe.wb == expected
    assert (recipe.temperature is not None) == (expected == "custom")


def test_writing_beside_an_adobe_sidecar_leaves_it_alone(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    adobe = tmp_path / "IMG_0001.xmp"
    adobe.write_bytes(ADOBE_XMP.read_bytes())
    stored = update_recipe(raw, lambda current: current.replace(exposure=1.0))
    assert stored.exposure == 1.0 and stored.temperature == 5600.0  # started from Adobe's hints
    assert adobe.read_bytes() == ADOBE_XMP.read_bytes()
    info = read_sidecar(raw)
    assert info.path == tmp_path / "IMG_0001.CR2.xmp" and info.recipe == stored and info.hints == {}
    assert (info.rating, info.keywords) == (3, ["wedding", "Anna & Ben"])  # still read from Adobe's file


def test_version_1_sidecar_reads(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    shutil.copy(V1_XMP, tmp_path / "IMG_0001.CR2.xmp")
    assert read_sidecar(raw).recipe == Recipe(
        style="natural", style_strength=0.8, exposure=0.3, wb="custom", temperature=5200, tint=-4, contrast=12,
        highlights=-30, shadows=25, saturation=-10, vibrance=15, sharpening=40,
        # schema 1 left the denoiser to the default of its day, the classical one, and the demosaic to one that
        # left DNG lens-shading maps unapplied (params version 1), and its saturation -10 to the chroma table
        # alone (photofinish params version 1), and the denoiser's automatic strength to the full-size image's
        # at any render size (classical params version 1), and a white far off the daylight locus unpinned (white
        # balance params version 2, colour version 1): all stay pinned
        stages={"denoise": StageSettings(enabled=False, implementation="classical",
                                         params={"version": 1, "follow_scale": False}),
                "upsample": StageSettings(implementation="bilinear"),
                "demosaic": StageSettings(implementation="mhc", params={"version": 1}),
                "photofinish": StageSettings(implementation="learned", params={"version": 1}),
                "white_balance": StageSettings(implementation="classical", params={"version": 2}),
                "colour": StageSettings(implementation="dng", params={"version": 1})},
    )
    assert read_sidecar(raw).rating == 2


def test_version_2_sidecar_keeps_the_fast_learned_denoiser(tmp_path: Path) -> None:
    """Schema 2 held recipes of recipe version 2, whose learned denoiser without params meant the "fast" network."""
    from engine.pipeline import stage_for

    raw = _raw(tmp_path)
    shutil.copy(V2_XMP, tmp_path / "IMG_0001.CR2.xmp")
    recipe = read_sidecar(raw).recipe
    assert recipe.stage("denoise").params == {"version": 2}
    assert stage_for("denoise", recipe).resolve_params(recipe).model == "fast"


def test_version_3_sidecar_keeps_the_classical_denoiser(tmp_path: Path) -> None:
    """Schema 3 held recipes of recipe version 3, which left the denoiser to the classical default; version 4 made
    "auto" (the learned denoiser where it pays) the default, so a schema-3 sidecar naming none pins classical."""
    from engine.pipeline import stage_for

    raw = _raw(tmp_path)
    shutil.copy(V3_XMP, tmp_path / "IMG_0001.CR2.xmp")
    recipe = read_sidecar(raw).recipe
    assert stage_for("denoise", recipe).implementation == "classical"
    assert recipe.stage("detail").implementation == "learned" and recipe.exposure == 0.3
    fresh = read_sidecar(raw).recipe.replace(stages={})  # what a recipe that names no denoiser gets now
    assert stage_for("denoise", fresh).implementation == "auto"


def test_older_schema_versions_migrate_step_by_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The migration chain a future schema version 2 would use: version 1 files are upgraded on read."""

    def rename_sharpening(properties: dict[str, str]) -> dict[str, str]:
        properties["denoise"] = properties.pop("sharpening")  # a made-up change of meaning, to see it run
        return properties | {"schemaVersion": "2"}

    monkeypatch.setattr(recipe_xmp, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(recipe_xmp.MIGRATIONS, 1, rename_sharpening)
    raw = _raw(tmp_path)
    shutil.copy(V1_XMP, tmp_path / "IMG_0001.CR2.xmp")
    recipe = read_sidecar(raw).recipe
    assert (recipe.sharpening, recipe.denoise, recipe.exposure) == (None, 40.0, 0.3)


# damaged settings of ours, which a whole new recipe (write_recipe) replaces; the other files are refused by it too
DAMAGED_SETTINGS = ("unknown-setting", "value-not-a-number", "value-out-of-range")


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_sidecar_is_refused_and_left_untouched(tmp_path: Path, kind: str) -> None:
    raw = _raw(tmp_path)
    sidecar = tmp_path / "IMG_0001.CR2.xmp"
    sidecar.write_bytes(MALFORMED[kind])
    actions = [lambda: read_sidecar(raw), lambda: recipe_for(raw)]
    for action in actions if kind in DAMAGED_SETTINGS else [*actions, lambda: write_recipe(raw, Recipe())]:
        with pytest.raises(SidecarError) as error:
            action()
        message = str(error.value)
        assert "\n" not in message and str(sidecar) in message
        assert "root:" not in message  # the external entity was never read
    assert isinstance(error.value, RecipeError)
    assert sidecar.read_bytes() == MALFORMED[kind]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [raw.name, sidecar.name]


@pytest.mark.parametrize("kind", DAMAGED_SETTINGS)
def test_a_whole_recipe_replaces_damaged_settings_of_ours_and_keeps_the_rest(tmp_path: Path, kind: str) -> None:
    # no edit could repair them: every write read the damaged recipe first
    raw = _raw(tmp_path)
    sidecar = tmp_path / "IMG_0001.CR2.xmp"
    sidecar.write_bytes(MALFORMED[kind])
    write_recipe(raw, Recipe(exposure=0.5))
    assert read_sidecar(raw).recipe == Recipe(exposure=0.5)


def test_catalogue_data_becomes_output_xmp(tmp_path: Path) -> None:
    raw = _raw(tmp_path, "colorchart.dng")
    (tmp_path / "colorchart.dng.xmp").write_bytes(need(DARKTABLE_XMP).read_bytes())
    assert catalogue_xmp(read_sidecar(raw)) == {
        "Xmp.xmp.Rating": "4", "Xmp.xmp.Label": "Red", "Xmp.dc.subject": ["client-a", "studio"],
    }
    assert catalogue_xmp(None) == {}


def test_several_darktable_labels_reach_the_output_as_darktable_reads_them(tmp_path: Path) -> None:
    # they were written as xmp:Label "Yellow, Green, Blue", which darktable read as no label at all
    raw = _raw(tmp_path, "colorchart.dng")
    text = need(DARKTABLE_XMP).read_bytes().replace(b"<rdf:li>0</rdf:li> </rdf:Seq> </darktable:colorlabels>",
                                                    b"<rdf:li>1</rdf:li><rdf:li>2</rdf:li><rdf:li>3</rdf:li>"
                                                    b" </rdf:Seq> </darktable:colorlabels>")
    (tmp_path / "colorchart.dng.xmp").write_bytes(text)
    xmp = catalogue_xmp(read_sidecar(raw))
    # (checked with darktable-cli 4.2: an xmp:Label beside the list would have overridden it)
    assert "Xmp.xmp.Label" not in xmp and xmp["Xmp.darktable.colorlabels"] == ["1", "2", "3"]


_WRITER = """
import sys, time
from pathlib import Path
from engine.xmp.sidecar import update_recipe
raw, setting, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))  # both writers begin together, after their imports
for step in range(1, 41):
    update_recipe(raw, lambda r: r.replace(**{setting: float(step)}))
"""


def test_writers_at_once_keep_each_others_settings(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    (tmp_path / "IMG_0001.CR2.xmp").write_bytes(need(DARKTABLE_XMP).read_bytes())
    start = str(time.time() + 6.0)  # after both have imported the engine
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(raw), setting, start], stderr=subprocess.PIPE)
               for setting in ("contrast", "shadows", "highlights")]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read().decode()
    recipe = read_sidecar(raw).recipe
    assert (recipe.contrast, recipe.shadows, recipe.highlights) == (40.0, 40.0, 40.0)
    assert read_sidecar(raw).keywords == ["client-a", "studio"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".lock"))]


def _darktable(raw: Path, sidecar: Path, out: Path, config: Path) -> np.ndarray:
    import cv2

    command = ["darktable-cli", str(raw), str(sidecar), str(out), "--width", "240", "--height", "240",
               "--core", "--configdir", str(config), "--library", ":memory:"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and out.is_file(), done.stdout + done.stderr
    return cv2.imread(str(out), cv2.IMREAD_UNCHANGED)


@pytest.mark.skipif(shutil.which("darktable-cli") is None,
                    reason="darktable-cli is not installed (tests/setup-system.sh installs it)")
def test_darktable_renders_identically_after_we_wrote_our_recipe(tmp_path: Path) -> None:
    if not CANON.is_file() or not DARKTABLE_XMP.is_file():
        pytest.skip(f"shared test data not present: {CANON} and {DARKTABLE_XMP}")
    raw = tmp_path / CANON.name
    shutil.copy(CANON, raw)
    sidecar = tmp_path / f"{CANON.name}.xmp"
    sidecar.write_bytes(need(DARKTABLE_XMP).read_bytes())
    before = _darktable(raw, sidecar, tmp_path / "before.png", tmp_path / "config-before")
    write_recipe(raw, Recipe(exposure=0.7, contrast=20, stages={"denoise": StageSettings(enabled=False)}))
    assert b"hostplug:exposure" in sidecar.read_bytes()
    after = _darktable(raw, sidecar, tmp_path / "after.png", tmp_path / "config-after")
    assert before.shape == after.shape and np.array_equal(before, after)
    assert read_sidecar(raw).recipe.exposure == 0.7


def test_unstamped_stage_params_are_version_1_in_layout_1_and_current_later(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    v1 = V1_XMP.read_text(encoding="utf-8").replace('"upsample":{"implementation":"bilinear"}',
                                                    '"upsample":{"implementation":"bilinear"},'
                                                    '"white_balance":{"params":{"mode":"auto"}}')
    (tmp_path / "IMG_0001.CR2.xmp").write_text(v1, encoding="utf-8")
    assert read_sidecar(raw).recipe.stage("white_balance").params == {"version": 1, "mode": "auto"}
    (tmp_path / "IMG_0001.CR2.xmp").write_text(v1.replace('schemaVersion="1"', 'schemaVersion="9"'), encoding="utf-8")
    assert read_sidecar(raw).recipe.stage("white_balance").params == {"mode": "auto"}  # hand-written: current


def test_writing_a_recipe_keeps_the_persons_description_note(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    sidecar = tmp_path / "IMG_0001.CR2.xmp"
    sidecar.write_text(V1_XMP.read_text(encoding="utf-8").replace(
        'hostplug:schemaVersion="1"', 'hostplug:schemaVersion="1" hostplug:description="client wants it bright"'),
        encoding="utf-8")
    write_recipe(raw, Recipe(exposure=1.0))
    assert "client wants it bright" in sidecar.read_text(encoding="utf-8")
    assert read_sidecar(raw).recipe.exposure == 1.0


def test_titles_in_several_languages_and_a_label_of_the_users_own_reach_outputs_as_written(tmp_path: Path) -> None:
    # the German title was carried as the default and the real default dropped; Bridge's "To Do" became "To do"
    from engine.xmp.sidecar import catalogue_xmp

    raw = _raw(tmp_path)
    (tmp_path / "IMG_0001.CR2.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Label="To Do"><dc:title><rdf:Alt>'
        '<rdf:li xml:lang="de-DE">Nachtstraße</rdf:li><rdf:li xml:lang="x-default">Night street</rdf:li>'
        '</rdf:Alt></dc:title></rdf:Description></rdf:RDF></x:xmpmeta>', encoding="utf-8")
    xmp = catalogue_xmp(read_sidecar(raw))
    assert list(xmp["Xmp.dc.title"].items()) == [('lang="x-default"', "Night street"), ('lang="de-DE"', "Nachtstraße")]
    assert xmp["Xmp.xmp.Label"] == "To Do"


def test_a_sidecar_padded_with_nul_bytes_reads_as_darktable_reads_it(tmp_path: Path) -> None:
    """A tester's darktable sidecar with NUL padding after the packet: darktable read it, hostplug refused it."""
    from engine.xmp.document import parse_packet
    from engine.xmp.hints import rating

    packet = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="3"/></rdf:RDF>'
              b'</x:xmpmeta>\n')
    assert rating(parse_packet(packet + b"\0" * 64, "padded.xmp")) == 3
    with pytest.raises(SidecarError, match="not valid XML"):
        parse_packet(packet[:-30] + b"\0" * 64, "cut.xmp")  # padding does not excuse a packet cut short


def test_a_point_curve_on_the_diagonal_is_no_edit() -> None:
    from engine.xmp.hints import _linear

    assert _linear(["0, 0", "128, 128", "255, 255"]) and _linear(["0,0", "255,255"]) and _linear([])
    assert not _linear(["0, 0", "128, 140", "255, 255"]) and not _linear(["0, 0", "x"])


def test_a_sidecar_time_that_is_no_time_of_day_changes_nothing() -> None:
    from engine.xmp.capture_time import with_capture_time

    camera = {"Exif.Photo.DateTimeOriginal": "2021:05:06 07:08:09"}
    for text in ("2022-01-01", "2022-13-01T10:00:00", "yesterday", "2022-02-30T10:00"):
        assert with_capture_time(camera, {"Xmp.exif.DateTimeOriginal": text}) == camera
    assert with_capture_time(camera, {"Xmp.exif.DateTimeOriginal": "2022-02-03T04:05Z"}) == {
        "Exif.Photo.DateTimeOriginal": "2022:02:03 04:05:00", "Exif.Photo.OffsetTimeOriginal": "+00:00"}


def test_a_setting_given_twice_in_a_sidecar_is_refused_not_one_picked(tmp_path: Path) -> None:
    """A tester's: two rdf:Description blocks with hostplug:exposure 0.5 and 1: the last was used silently."""
    from engine.errors import StoredSettingError
    from engine.xmp.sidecar import read_sidecar

    raw = tmp_path / "IMG_1.dng"
    raw.write_bytes(b"")
    (tmp_path / "IMG_1.dng.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:hostplug="http://ns.hostplug.org/xmp/1.0/" hostplug:schemaVersion="16" '
        'hostplug:exposure="0.5"/><rdf:Description rdf:about="" xmlns:hostplug="http://ns.hostplug.org/xmp/1.0/" '
        'hostplug:exposure="1"/></rdf:RDF></x:xmpmeta>')
    with pytest.raises(StoredSettingError, match=r"hostplug:exposure is set twice \('0.5' and '1'\); keep one"):
        read_sidecar(raw)


@pytest.mark.parametrize("uri", ["http://ns.hostplug.org/xmp/1.1/", "http://ns.hostplug.com/xmp/1.0/",
                                 "http://example.org/ours/"])
def test_hostplug_settings_under_a_mistyped_namespace_are_refused_not_ignored(tmp_path: Path, uri: str) -> None:
    """A tester's: settings under a mistyped xmlns:hostplug were ignored, and the raw rendered with the defaults."""
    from engine.errors import SidecarError
    from engine.xmp.sidecar import read_sidecar

    raw = tmp_path / "IMG_1.dng"
    raw.write_bytes(b"")
    sidecar = tmp_path / "IMG_1.dng.xmp"
    sidecar.write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
                       'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                       f'<rdf:Description rdf:about="" xmlns:hostplug="{uri}" hostplug:schemaVersion="17" '
                       'hostplug:exposure="1"/></rdf:RDF></x:xmpmeta>')
    with pytest.raises(SidecarError, match=f"{sidecar}: its hostplug settings are in the namespace '{uri}', "
                       r"not hostplug's 'http://ns.hostplug.org/xmp/1.0/', and would be ignored; correct the "
                       "xmlns:hostplug declaration"):
        read_sidecar(raw)
    sidecar.write_text(sidecar.read_text().replace(uri, "http://ns.hostplug.org/xmp/1.0/"))
    info = read_sidecar(raw)
    assert info is not None and info.recipe is not None and info.recipe.exposure == 1.0


def test_a_sidecar_time_equal_to_a_camera_s_zone_given_in_offsettime_only_keeps_its_fraction() -> None:
    # a re-tester's Nikon: its zone in OffsetTime only; the sidecar's same second and zone dropped the fraction
    from engine.xmp.capture_time import with_capture_time

    camera = {"Exif.Photo.DateTimeOriginal": "2026:07:20 22:20:59", "Exif.Image.DateTime": "2026:07:20 22:20:59",
              "Exif.Photo.OffsetTime": "+01:00", "Exif.Photo.SubSecTimeOriginal": "43"}
    assert with_capture_time(camera, {"Xmp.exif.DateTimeOriginal": "2026-07-20T22:20:59+01:00"}) == camera


def test_a_corrected_capture_time_corrects_the_digitized_time_the_camera_gave_as_the_same() -> None:
    # a tester's output said 05:00 taken and 03:04 digitized: darktable's date editor writes DateTimeOriginal only
    from engine.xmp.capture_time import with_capture_time

    camera = {"Exif.Photo.DateTimeOriginal": "2020:01:02 03:04:05",
              "Exif.Photo.DateTimeDigitized": "2020:01:02 03:04:05",
              "Exif.Photo.OffsetTimeOriginal": "+02:00", "Exif.Photo.OffsetTimeDigitized": "+02:00"}
    corrected = with_capture_time(camera, {"Xmp.exif.DateTimeOriginal": "2020-01-02T05:00:00+02:00"})
    assert corrected is not None
    assert corrected["Exif.Photo.DateTimeOriginal"] == "2020:01:02 05:00:00"
    assert corrected["Exif.Photo.DateTimeDigitized"] == "2020:01:02 05:00:00"
    scanned = {**camera, "Exif.Photo.DateTimeDigitized": "2021:05:06 07:08:09"}  # a slide scanned later: its own
    corrected = with_capture_time(scanned, {"Xmp.exif.DateTimeOriginal": "2020-01-02T05:00:00+02:00"})
    assert corrected is not None and corrected["Exif.Photo.DateTimeDigitized"] == "2021:05:06 07:08:09"
