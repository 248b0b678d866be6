"""Hostile sidecars, presets, recipe files and names (issue 13, items 4, 5 and 6).

A sidecar that is a FIFO, a link to one or to ``/dev/zero``, or far too large; stage settings out of range, of the
wrong type, with a bad version or nested 100,000 deep; names of 252 to 255 bytes. For each, ``show``, ``edit`` and
``render`` print exactly one ``hostplug: error:`` line naming the file and exit non-zero, within a timeout (no
hang), write nothing, and never rewrite the sidecar (another program's data). Several raws go through one
process (each failure is its own line), so a handful of process starts covers the corpus.
"""

from __future__ import annotations

import html
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile_inputs import SAMPLE_DNG

NS = "http://ns.hostplug.org/xmp/1.0/"
TIMEOUT = 120  # a hang shows as a failed test, long before this for every case


def packet(stages: str | None = None, extra: str = "") -> bytes:
    """An XMP sidecar with our properties (stage settings as given) and another program's data."""
    ours = f' hostplug:stages="{html.escape(stages)}"' if stages is not None else ""
    return (f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
            f'<rdf:Description rdf:about="" xmlns:hostplug="{NS}" xmlns:darktable="http://darktable.sf.net/"'
            f' darktable:history_end="3" hostplug:schemaVersion="1"{ours}{extra}/>\n'
            '</rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>\n').encode()


DEEP = '{"a":' * 100_000 + "1" + "}" * 100_000

# Stage settings a sidecar may hold, and the words of the one line that refuses each.
BAD_STAGES: dict[str, tuple[str, str]] = {
    "strength-1e308": ('{"denoise":{"params":{"strength":1e308}}}', "'strength' = 1e+308 is out of range"),
    "radius-1e9": ('{"detail":{"params":{"radius":1e9}}}', "'radius' = 1000000000.0 is out of range"),
    "radius-nan": ('{"detail":{"params":{"radius":NaN}}}', "is not a finite number"),
    "version-text": ('{"detail":{"params":{"version":"x","radius":1}}}', "params version 'x' is not a whole"),
    "version-future": ('{"detail":{"params":{"version":99,"radius":1}}}', "newer than this hostplug"),
    "unknown-stage": ('{"nosuch":{"enabled":false}}', "unknown stage 'nosuch'"),
    "unknown-param": ('{"detail":{"params":{"nosuch":1}}}', "has no parameter 'nosuch'"),
    "neutral-zero": ('{"white_balance":{"params":{"neutral":[0,0,0]}}}', "'neutral'"),
    "deep-json": (DEEP, "nests JSON more than"),
    "not-json": ("{", "not valid JSON"),
    "long-number": ('{"denoise":{"params":{"strength":1' + "0" * 5000 + "}}}", "a number far too long"),
    # a version of the learned denoiser's params, where a layout-1 sidecar's unnamed denoiser is the classical one
    "other-implementations-version": ('{"denoise":{"params":{"strength":0,"version":5}}}', "params version 5"),
    "a-list": ("[]", "recipe 'stages' must be an object"),  # a traceback in a sidecar of an earlier layout
}


def make_special(path: Path, kind: str) -> str:
    """Make ``path`` a sidecar that is not a small regular file; the words of the line that refuses it."""
    if kind == "fifo":
        os.mkfifo(path)
        return "is a FIFO"
    if kind == "link-to-fifo":
        os.mkfifo(path.with_name("pipe"))
        path.symlink_to(path.with_name("pipe"))
        return "is a FIFO"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
        return "character device"
    if kind == "link-to-nothing":  # a share that is not mounted: the defaults would render without a word
        path.symlink_to("/nonexistent-share/IMG_0001.dng.xmp")
        return "a link to /nonexistent-share"
    if kind == "folder":
        path.mkdir()
        return "is a folder"
    if kind == "huge":
        path.write_bytes(packet(extra=' darktable:x="' + "y" * (17 << 20) + '"'))
        return "far too large"
    if kind == "huge-value":  # under the size limit, over libxml2's limit on one value
        path.write_bytes(packet(extra=' darktable:x="' + "y" * (11 << 20) + '"'))
        return "more than 10 MB"
    if kind == "long-value":  # the line quotes it cut short
        path.write_bytes(packet(extra=' hostplug:exposure="' + "1," * 100_000 + '"'))
        return "hostplug:exposure '1,1,1"
    if kind == "crowded":  # lxml reads 20 000 attributes' values in 2 s a time: refused, not slow
        path.write_bytes(packet(extra="".join(f' darktable:a{i}="1"' for i in range(20_000))))
        return "20003 attributes"
    if kind == "unknown-encoding":
        path.write_bytes(b'<?xml version="1.0" encoding="Shift_JIS"?>\n' + packet().split(b"\n", 1)[1])
        return "names an encoding that cannot be read"
    assert kind == "text-in-rdf"  # a description's start tag damaged: edit wrote the defaults over what it held
    path.write_bytes(packet().replace(b"<rdf:Description ", b"", 1).replace(b"/>", b"", 1))
    return "text directly inside rdf:RDF"


SPECIAL = ("fifo", "link-to-fifo", "dev-zero", "huge", "link-to-nothing", "folder", "huge-value", "long-value",
           "crowded", "unknown-encoding", "text-in-rdf")


def hostplug(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from hostplug.cli import main; main()", *(str(a) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, **(env or {})})


def assert_lines(result: subprocess.CompletedProcess[str], expected: dict[str, str]) -> None:
    """Exit non-zero; exactly one ``hostplug: error:`` line per key (a path it starts with) holding its words;
    nothing else on stderr but the batch summary; never a traceback."""
    assert result.returncode != 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.endswith("files failed")]
    assert len(lines) == len(expected), "\n".join(lines)
    for start, words in expected.items():
        mine = [line for line in lines if line.startswith(f"hostplug: error: {start}")]
        assert len(mine) == 1, (start, lines)
        assert words.lower() in mine[0].lower(), (words, mine[0])
        assert len(mine[0]) < 1000, mine[0][:1000]  # a bad value of megabytes is quoted cut short


def snapshot(folder: Path) -> dict[str, object]:
    """Every entry of ``folder``: a regular file's bytes, else its kind (a FIFO stays a FIFO)."""
    found: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        st = path.lstat()
        found[path.name] = path.read_bytes() if stat.S_ISREG(st.st_mode) else stat.S_IFMT(st.st_mode)
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Path, str]]:
    """One folder per case (its raw and hostile sidecar); raw -> the words its error line holds."""
    root = tmp_path_factory.mktemp("hostile-sidecars")
    cases: dict[Path, str] = {}
    for name, (stages, words) in BAD_STAGES.items():
        raw = root / name / "IMG_0001.dng"
        raw.parent.mkdir()
        shutil.copy(SAMPLE_DNG, raw)
        raw.with_name("IMG_0001.dng.xmp").write_bytes(packet(stages))
        cases[raw] = words
    for kind in SPECIAL:
        for sidecar_name in ("IMG_0001.dng.xmp", "IMG_0001.xmp"):  # ours, and Adobe's name
            raw = root / f"{kind}-{sidecar_name}" / "IMG_0001.dng"
            raw.parent.mkdir()
            shutil.copy(SAMPLE_DNG, raw)
            cases[raw] = make_special(raw.with_name(sidecar_name), kind)
    return root, cases


def _expected(cases: dict[Path, str], keep: Callable[[Path], bool] = lambda raw: True) -> dict[str, str]:
    return {str(raw.parent) + "/IMG_0001": words for raw, words in cases.items() if keep(raw)}


def test_show_refuses_each_hostile_sidecar_in_one_line(corpus: tuple[Path, dict[Path, str]]) -> None:
    root, cases = corpus
    before = {raw: snapshot(raw.parent) for raw in cases}
    assert_lines(hostplug("show", *cases), _expected(cases))
    assert {raw: snapshot(raw.parent) for raw in cases} == before


def test_edit_refuses_each_hostile_sidecar_and_leaves_it_as_it_was(corpus: tuple[Path, dict[Path, str]]) -> None:
    root, cases = corpus
    before = {raw: snapshot(raw.parent) for raw in cases}
    assert_lines(hostplug("edit", *cases, "--exposure", "0.3"), _expected(cases))
    after = {raw: snapshot(raw.parent) for raw in cases}
    for raw in cases:  # the lock file ours may leave is the only new entry; nothing else changed
        assert {k: v for k, v in after[raw].items() if not k.endswith(".lock")} == before[raw], raw


def test_render_refuses_each_hostile_sidecar_and_writes_nothing(corpus: tuple[Path, dict[Path, str]],
                                                                tmp_path: Path) -> None:
    root, cases = corpus
    out = tmp_path / "out"
    out.mkdir()
    # Each case has its own folder, but the outputs share one: name them apart with -o per file is not possible
    # for several inputs, so render every case to --out-dir: all are refused before any decoding.
    result = hostplug("render", *cases, "--out-dir", out)
    assert_lines(result, _expected(cases))
    assert os.listdir(out) == []


def test_edit_refuses_to_store_invalid_stage_settings(tmp_path: Path) -> None:
    raw = tmp_path / "IMG_0001.dng"
    shutil.copy(SAMPLE_DNG, raw)
    result = hostplug("edit", raw, "--set", "detail.radius=1e9")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()][0].startswith("hostplug: error: ")
    assert not raw.with_name("IMG_0001.dng.xmp").exists()


def test_set_values_python_cannot_parse_are_one_line(tmp_path: Path) -> None:
    raw = tmp_path / "IMG_0001.dng"
    shutil.copy(SAMPLE_DNG, raw)
    for value, words in (("1" + "0" * 5000, "far too long"), ("[" * 5000 + "]" * 5000, "nests JSON more than")):
        assert_lines(hostplug("edit", raw, "--set", f"denoise.strength={value}"), {"--set denoise.strength": words})
    assert not raw.with_name("IMG_0001.dng.xmp").exists()


def test_recipe_files_and_presets_that_are_not_small_regular_files(tmp_path: Path) -> None:
    raw = tmp_path / "IMG_0001.dng"
    shutil.copy(SAMPLE_DNG, raw)
    fifo, deep, zero = tmp_path / "fifo.json", tmp_path / "deep.json", tmp_path / "zero.json"
    os.mkfifo(fifo)
    deep.write_text('{"stages":' + DEEP + "}")
    zero.symlink_to("/dev/zero")
    for recipe, words in ((fifo, "is a FIFO"), (deep, "nests JSON more than"), (zero, "character device")):
        assert_lines(hostplug("edit", raw, "--recipe", recipe), {str(recipe): words})
    assert not raw.with_name("IMG_0001.dng.xmp").exists()
    presets = tmp_path / "config" / "hostplug" / "presets"
    presets.mkdir(parents=True)
    os.mkfifo(presets / "pipe.xmp")
    (presets / "broken.xmp").write_text("<x:xmpmeta")
    result = hostplug("presets", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert_lines(result, {str(presets / "pipe.xmp"): "is a FIFO", str(presets / "broken.xmp"): ""})
    # one bad user preset does not hide the others: the shipped ones are listed all the same
    assert "user presets:" in result.stdout and len(result.stdout.splitlines()) > 4


def test_names_of_252_to_255_bytes(tmp_path: Path) -> None:
    """No sidecar can exist for them (``show`` says so); ``edit`` refuses in one line; a name that still fits
    with ``.xmp`` but not with the lock or temporary file's extra characters is edited normally."""
    raws = {}
    for total in (252, 255):
        raw = tmp_path / ("é" * 20 + "n" * (total - 44) + ".dng")
        assert len(os.fsencode(raw.name)) == total
        shutil.copy(SAMPLE_DNG, raw)
        raws[total] = raw
    show = hostplug("show", *raws.values())
    assert show.returncode == 0 and "Traceback" not in show.stderr, show.stderr
    assert show.stdout.count("no sidecar") == 2
    edit = hostplug("edit", *raws.values(), "--exposure", "0.3")
    assert_lines(edit, {str(raw): "too long for a sidecar" for raw in raws.values()})
    fits = tmp_path / ("f" * 240 + ".dng")  # IMG.dng.xmp is 248 bytes; .IMG.dng.xmp.XXXXXXXX.tmp would be 263
    shutil.copy(SAMPLE_DNG, fits)
    result = hostplug("edit", fits, "--exposure", "0.3")
    assert result.returncode == 0, result.stderr
    assert fits.with_name(fits.name + ".xmp").is_file()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_render_of_a_255_byte_name(tmp_path: Path) -> None:
    """NAME.jpg fits in 255 bytes, but the partial file written first (``.NAME.jpg.XXXXXXXX.part``) did not: the
    render now writes its output and leaves nothing else; an output name over 255 bytes is one line."""
    raw = tmp_path / "in" / ("n" * 251 + ".dng")
    raw.parent.mkdir()
    shutil.copy(SAMPLE_DNG, raw)
    out = tmp_path / "out"
    out.mkdir()
    result = hostplug("render", raw, "--out-dir", out, "--format", "jpeg", "--long-edge", "256")
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr[-3000:]
    assert os.listdir(out) == ["n" * 251 + ".jpg"]
    target = out / ("m" * 252 + ".jpg")
    result = hostplug("render", raw, "-o", target, "--long-edge", "256")
    assert_lines(result, {f"cannot write {target}": "more than the 255 a file name may have"})
    assert os.listdir(out) == ["n" * 251 + ".jpg"]


def test_deep_json_in_an_outputs_stored_recipe_is_one_error() -> None:
    from engine.errors import RecipeError
    from engine.rerender import _json

    with pytest.raises(RecipeError, match="nests JSON more than"):
        _json({"Xmp.hostplug.recipe": "[" * 100_000 + "]" * 100_000}, "recipe", Path("x.tif"))


def test_a_deeply_nested_packet_is_refused_saying_so() -> None:
    # libxml2's message called it invalid XML and named a parser flag the user cannot set
    from engine.errors import SidecarError
    from engine.xmp.document import parse_packet

    data = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + b"<a>" * 5000 + b"</a>" * 5000 + b"</x:xmpmeta>"
    with pytest.raises(SidecarError, match="nests XML elements more than 256 levels deep"):
        parse_packet(data, "IMG_0001.CR2.xmp")


def test_a_long_style_and_a_setting_held_as_an_array_are_one_short_line(tmp_path: Path) -> None:
    # a tester: a 5 MB hostplug:style was quoted whole (one line of megabytes), and an exposure written as an
    # rdf:Bag was passed over without a word (the defaults rendered)
    raw = tmp_path / "IMG_0001.dng"
    shutil.copy(SAMPLE_DNG, raw)
    raw.with_name("IMG_0001.dng.xmp").write_bytes(packet(extra=' hostplug:style="' + "a" * 100_000 + '"'))
    result = hostplug("show", raw)
    assert result.returncode == 4 and "unknown style 'aaa" in result.stderr and len(result.stderr) < 400
    raw.with_name("IMG_0001.dng.xmp").write_bytes(packet().replace(
        b"/>\n</rdf:RDF>", f'><hostplug:exposure xmlns:hostplug="{NS}"><rdf:Bag><rdf:li>2</rdf:li></rdf:Bag>'
        "</hostplug:exposure></rdf:Description>\n</rdf:RDF>".encode()))
    result = hostplug("show", raw)
    assert result.returncode == 4 and "hostplug:exposure holds an array or structure" in result.stderr


@pytest.mark.parametrize("value", ["Infinity", "1e400", "-inf", "NaN"])
def test_a_rating_that_is_no_finite_number_is_no_rating(tmp_path: Path, value: str) -> None:
    # a fuzzer's xmp:Rating="Infinity" was a traceback in show, render and edit (round() of an infinity), and
    # stopped a batch there; a rating that is no rating is passed over, as 6 and -2 are
    raw = tmp_path / "IMG_0001.dng"
    shutil.copy(SAMPLE_DNG, raw)
    raw.with_name("IMG_0001.dng.xmp").write_bytes(packet(
        extra=f' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="{value}"'))
    result = hostplug("show", raw)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr


def test_a_recipe_file_with_a_byte_order_mark_reads_and_one_with_a_key_twice_is_refused(tmp_path: Path) -> None:
    # a fuzzer's: a recipe saved by Windows Notepad (a UTF-8 byte-order mark) was "not valid JSON", and
    # {"exposure": 1, "exposure": -4} rendered at -4 without a word (a sidecar's setting given twice is refused)
    raw = tmp_path / "IMG_0001.dng"
    shutil.copy(SAMPLE_DNG, raw)
    marked = tmp_path / "marked.json"
    marked.write_text('\ufeff{"exposure": 0.5}', encoding="utf-8")
    result = hostplug("edit", raw, "--recipe", marked)
    assert result.returncode == 0, result.stderr
    twice = tmp_path / "twice.json"
    twice.write_text('{"exposure": 1, "exposure": -4}')
    result = hostplug("edit", raw, "--recipe", twice)
    assert result.returncode == 4 and "recipe gives 'exposure' twice" in result.stderr
