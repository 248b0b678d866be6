"""The GIMP 3 plug-in in a real GIMP 3, headless: a shared raw opens through it at full size in 16-bit precision,
remembers its raw in a parasite that survives XCF, re-renders as a new layer, gives a thumbnail, and a raw that
cannot be decoded is an error that GIMP survives.

GIMP 3 is packaged from Debian 13 on; on Debian 12 ``tests/setup-gimp.sh`` builds a Debian 13 root with it and
bind-mounts this machine's Python and repository into it (see the script). The test skips, saying why, when that
cannot be done (not root, no debootstrap or network). One GIMP session runs every check, with a fresh GIMP profile
into which ``hostplug integrate gimp --make-default-raw-loader`` installs the plug-in.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostplug.cli import main
from tests.conftest import CANON, REPO, SAMPLE_DNG, SONY, need

ROOT = Path(os.environ.get("HOSTPLUG_GIMP_ROOT", "/var/tmp/trixie-root"))
MARKER = "HOSTPLUG-RESULT "

# Runs inside GIMP (python-fu-eval); paths come in through the environment.
PROBE = r'''
import json, os
from gi.repository import Gimp, Gio
out = {}
pdb = Gimp.get_pdb()
raw = Gio.File.new_for_path(os.environ["HP_RAW"])
image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, raw)
out["size"] = [image.get_width(), image.get_height()]
out["precision"] = image.get_precision().value_nick
out["layers"] = len(image.get_layers())
profile = image.get_color_profile()
out["profile"] = profile.get_description() if profile else None
parasite = image.get_parasite("hostplug-recipe")
out["parasite_flags"] = parasite.get_flags() if parasite else None
out["parasite"] = json.loads(bytes(parasite.get_data()).decode()) if parasite else None
metadata = image.get_metadata()
out["metadata"] = metadata.serialize() if metadata else ""  # GIMP's XML of every tag

proc = pdb.lookup_procedure("plug-in-hostplug-rerender")
config = proc.create_config()
config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
config.set_property("image", image)
config.set_property("exposure", 1.0)
result = proc.run(config)
out["rerender"] = result.index(0).value_nick
out["layers_after"] = [layer.get_name() for layer in image.get_layers()]
out["precision_after"] = image.get_precision().value_nick
parasite = image.get_parasite("hostplug-recipe")
out["recipe_after"] = json.loads(bytes(parasite.get_data()).decode())["recipe"]
out["metadata_after"] = image.get_metadata().serialize()
out["undoable_after"] = bool(parasite.get_flags() & Gimp.PARASITE_UNDOABLE)  # (scripts have no undo to call)

xcf = Gio.File.new_for_path(os.environ["HP_XCF"])
out["saved"] = Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, xcf, None)
image.crop(image.get_width() // 2, image.get_height() // 2, 10, 10)
config = proc.create_config()
config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
config.set_property("image", image)
result = proc.run(config)
out["cropped"] = [result.index(0).value_nick, result.index(1) if result.length() > 1 else None,
                  len(image.get_layers())]
image.delete()
again = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, xcf)
parasite = again.get_parasite("hostplug-recipe")
out["xcf_parasite"] = json.loads(bytes(parasite.get_data()).decode()) if parasite else None
for turn, key in ((lambda: again.flip(Gimp.OrientationType.HORIZONTAL), "flipped"),
                  (lambda: again.rotate(Gimp.RotationType.DEGREES180), "turned")):
    turn()  # the size stays: only the picture tells
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", again)
    result = proc.run(config)
    out[key] = [result.index(0).value_nick, result.index(1) if result.length() > 1 else None, len(again.get_layers())]
    turn()  # and back
import shutil
shutil.copy(os.environ["HP_RAW"], os.environ["HP_RAW"] + ".kept")
shutil.copy(os.environ["HP_OTHER"], os.environ["HP_RAW"])  # another photo under the raw's name
proc = pdb.lookup_procedure("plug-in-hostplug-rerender")
config = proc.create_config()
config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
config.set_property("image", again)
result = proc.run(config)
out["other_photo"] = [result.index(0).value_nick, result.index(1) if result.length() > 1 else None,
                      len(again.get_layers())]
os.replace(os.environ["HP_RAW"] + ".kept", os.environ["HP_RAW"])
again.delete()

proc = pdb.lookup_procedure("file-hostplug-raw-load-thumb")
config = proc.create_config()
config.set_property("file", raw)
config.set_property("thumb-size", 128)
result = proc.run(config)
out["thumbnail"] = [result.index(0).value_nick, result.index(2), result.index(3)]
thumb = result.index(1)
out["thumbnail_size"] = [thumb.get_width(), thumb.get_height()]
thumb.delete()

proc = pdb.lookup_procedure("file-hostplug-raw-load")
config = proc.create_config()
config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
config.set_property("file", Gio.File.new_for_path(os.environ["HP_BAD"]))
result = proc.run(config)
out["bad"] = [result.index(0).value_nick, result.index(1) if result.length() > 1 else None]
print("HOSTPLUG-RESULT " + json.dumps(out))
'''


def _setup(*args: str) -> subprocess.CompletedProcess[str]:
    """Run tests/setup-gimp.sh for this interpreter and root."""
    return subprocess.run(["sh", str(REPO / "tests" / "setup-gimp.sh"), *args], capture_output=True, text=True,
                          timeout=1800, env={**os.environ, "PYTHON": sys.executable, "HOSTPLUG_GIMP_ROOT": str(ROOT)})


def _prepare_root() -> list[Path]:
    """Build or check the Debian 13 root with tests/setup-gimp.sh; skip the module when that cannot be done.

    Returns the bind mounts the script made now, which the caller takes down again (``unmount``); those that were
    up before stay. All of them were left up when some were before: a CI run on a machine where a developer's were
    kept the binding of its checkout, which a later CI run, in a new checkout at the same path, found deleted."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("the real-GIMP test needs root on Linux (it builds and chroots into a Debian 13 root with "
                    "GIMP 3; run tests/setup-gimp.sh as root)")
    if not (ROOT / "usr/bin/gimp-console-3.0").exists() and shutil.which("debootstrap") is None \
            and shutil.which("apt-get") is None:
        pytest.skip(f"no GIMP 3 root at {ROOT} and no debootstrap/apt-get to build one")
    done = _setup()
    if done.returncode != 0:
        tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        pytest.skip(f"cannot prepare GIMP 3 (tests/setup-gimp.sh failed: {tail})")
    # the binds the script made now (it says which), not those another run made meanwhile
    made = [line.removeprefix("bound /") for line in done.stdout.splitlines() if line.startswith("bound /")]
    return sorted(ROOT / folder for folder in made)


@pytest.fixture(scope="module")
def gimp() -> Iterator[dict]:
    """One headless GIMP 3 session through the installed plug-in; yields what the probe saw."""
    canon = need(CANON)
    binds = _prepare_root()
    work = Path(tempfile.mkdtemp(prefix="hostplug-gimp é ", dir="/tmp"))  # /tmp: the same folder inside the root
    try:
        yield _run_gimp(work, canon)
    finally:
        try:  # _run_gimp stops the service; this is for a run that failed before it could
            stop_service({"PATH": "/usr/bin:/bin", "HOME": "/root", "XDG_RUNTIME_DIR": str(work / "runtime")})
        finally:
            shutil.rmtree(work, ignore_errors=True)
            unmount(binds)


def _mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point. Not os.path.ismount: a bind mount of a folder on the same file system
    (the root's /tmp, from this machine's) has its parent's device, so it says no."""
    done = subprocess.run(["mountpoint", "-q", str(path)], capture_output=True)
    return done.returncode == 0


def unmount(points: list[Path]) -> None:
    """Take down the bind mounts ``points`` (deepest first); a failure fails the test run (a root left with /tmp
    and the Python install mounted into it is a trap for whoever deletes it)."""
    failed = []
    for point in sorted(points, reverse=True):
        for _attempt in range(20):  # a process of the root that is exiting may hold it for a moment
            done = subprocess.run(["umount", "-R", str(point)], capture_output=True, text=True)
            if done.returncode == 0 or not _mounted(point):
                break
            time.sleep(0.5)
        else:
            failed.append(f"{point}: {done.stderr.strip()}")
    assert not failed, "could not unmount (busy? 'fuser -vm PATH' shows who holds it): " + "; ".join(failed)


def stop_service(env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Stop the render service that the plug-in started in the root (its runtime folder is ``env``'s) and wait,
    up to ``timeout`` seconds, for it to exit: ``serve --stop`` returns at once, and until the service has gone it
    holds files under the root's /tmp, which then cannot be unmounted. The ``serve --stop`` run is returned."""
    command = ["chroot", str(ROOT), "env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-c",
               "from hostplug.cli import main; main()", "serve", "--stop"]
    stopped = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if stopped.returncode == 0:
        pid = json.loads(stopped.stdout)["pid"]
        deadline = time.monotonic() + timeout
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)  # the test's own service: the mounts must come down regardless
            raise AssertionError(f"the render service (pid {pid}) did not exit within {timeout:g} s of --stop")
    return stopped


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _run_gimp(work: Path, canon: Path) -> dict:
    """Install the plug-in into a fresh GIMP profile in ``work`` and run the probe in GIMP."""
    folder = work / "Raws à voir"
    folder.mkdir()
    raw = Path(shutil.copy(canon, folder / "Canon 550D — colour chart.dng"))
    edited = CliRunner().invoke(main, ["edit", str(raw), "--style", "warm", "--saturation", "20"])
    assert edited.exit_code == 0, edited.output
    sidecar = raw.with_name(raw.name + ".xmp")  # a rating, as a catalogue writes it: it reaches the render's TIFF
    sidecar.write_text(sidecar.read_text().replace("<rdf:Description", '<rdf:Description xmlns:xmp='
                                                   '"http://ns.adobe.com/xap/1.0/" xmp:Rating="3"', 1))
    bad = folder / "broken é.CR2"
    bad.write_bytes(b"II*\x00" + b"\x00" * 200)
    profile = work / "GIMP profile"
    installed = CliRunner(env={"GIMP3_DIRECTORY": str(profile)}).invoke(
        main, ["integrate", "gimp", "--make-default-raw-loader"], catch_exceptions=False)
    assert installed.exit_code == 0, installed.output
    probe = work / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    # A runtime folder of its own: without one the plug-in's service would live in /tmp/hostplug-UID, which the
    # root shares with this machine, where a service of this user may be running already (and refuses the root's).
    (work / "runtime").mkdir(mode=0o700)
    env = {"HOME": "/root", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "GIMP3_DIRECTORY": str(profile),
           "XDG_RUNTIME_DIR": str(work / "runtime"), "HP_RAW": str(raw), "HP_BAD": str(bad),
           "HP_XCF": str(work / "saved é.xcf"), "HP_OTHER": str(SAMPLE_DNG)}
    command = ["chroot", str(ROOT), "env", *(f"{k}={v}" for k, v in env.items()), "gimp-console-3.0", "-i",
               "--batch-interpreter=python-fu-eval", "-b", f"exec(open({str(probe)!r}).read())", "--quit"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    # The plug-in started the render service inside the root; stop it, or it would hold the root's mounts busy.
    stopped = stop_service(env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    lines = [line for line in done.stdout.splitlines() + done.stderr.splitlines() if line.startswith(MARKER)]
    assert lines, f"GIMP printed no result (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    seen = json.loads(lines[-1][len(MARKER):])
    seen.update(raw=str(raw), bad_raw=str(bad), log=done.stdout + done.stderr, work=str(work), env=env)
    return seen


def _expected_size(raw: Path) -> list[int]:
    import engine

    source = engine.open(raw)
    height, width = source.size
    return [height, width] if source.orientation >= 5 else [width, height]


def test_a_raw_opens_through_the_plugin_at_full_size_in_16_bit(gimp: dict) -> None:
    assert gimp["size"] == _expected_size(Path(gimp["raw"]))
    assert gimp["precision"].startswith("u16")
    assert gimp["layers"] == 1
    assert gimp["profile"] == "sRGB"  # the TIFF's embedded profile, honoured by GIMP's TIFF loader


def test_the_image_remembers_its_raw_and_recipe_persistently(gimp: dict) -> None:
    assert gimp["parasite"]["raw"] == gimp["raw"]
    assert gimp["parasite"]["recipe"]["style"] == "warm"  # the sidecar's
    # what a custom white balance starts from in the dialog: the white the render came to, not 5500 K
    import engine

    noted = engine.render(engine.open(gimp["raw"]), preview=64).notes["white_balance"]
    assert gimp["parasite"]["white"] == {"temperature": float(noted["temperature"]), "tint": float(noted["tint"])}
    assert gimp["parasite_flags"] & 1  # GIMP_PARASITE_PERSISTENT
    assert gimp["xcf_parasite"]["raw"] == gimp["raw"]  # survived saving and reopening as XCF


def test_the_image_holds_the_renders_metadata_not_the_raws(gimp: dict) -> None:
    # a tester's GIMP image held the raw's metadata: the sidecar's rating, keywords and GPS were gone from exports
    import re

    tags = dict(re.findall(r'<tag name="([^"]+)">([^<]*)</tag>', gimp["metadata"]))
    assert tags.get("Xmp.xmp.Rating") == "3", gimp["metadata"][:2000]
    assert tags.get("Exif.Image.Software", "").startswith("hostplug")
    # not the TIFF's layout and profile: a tester's JPEG after a profile conversion carried two ICC profiles
    for held in (gimp["metadata"], gimp["metadata_after"]):
        names = set(re.findall(r'<tag name="([^"]+)">', held))
        assert not names & {"Exif.Image.InterColorProfile", "Exif.Image.StripOffsets", "Exif.Image.XMLPacket"}


def test_rerender_adds_a_layer_with_the_changed_recipe(gimp: dict) -> None:
    assert gimp["rerender"] == "success"
    # a script's call changes only what it sets: the stored style and saturation stay (they were reset)
    assert gimp["layers_after"] == ["hostplug: warm", "Background"]
    assert gimp["recipe_after"]["exposure"] == 1.0 and gimp["recipe_after"]["saturation"] == 20.0
    assert gimp["precision_after"].startswith("u16")


def test_thumbnail_is_the_raws_preview_with_its_full_size(gimp: dict) -> None:
    status, width, height = gimp["thumbnail"]
    assert status == "success" and [width, height] == gimp["size"]
    assert max(gimp["thumbnail_size"]) <= 128


def test_after_a_rerender_exports_record_its_recipe_and_an_undo_would_take_it_back(gimp: dict) -> None:
    # a tester's export after a re-render recorded the first render's recipe, and an undo of the layer left the
    # re-render's recipe in the image
    import re

    tags = dict(re.findall(r'<tag name="([^"]+)">([^<]*)</tag>', gimp["metadata_after"]))
    recorded = json.loads(tags["Xmp.hostplug.recipe"].replace("&quot;", '"'))
    assert recorded["exposure"] == 1.0 and recorded["style"] == "warm"
    assert tags.get("Xmp.xmp.Rating") == "3"  # the rest of the image's metadata stays
    assert gimp["undoable_after"] and not gimp["parasite_flags"] & 2  # a re-render's is undone with its layer


def test_rerender_refuses_a_flipped_or_half_turned_image(gimp: dict) -> None:
    # a tester's flip kept the size: the re-render's unflipped layer was added over the flipped picture
    printed = gimp["parasite"]["print"]
    assert printed["width"] == 24 and len(printed["luma"]) == printed["width"] * printed["height"]
    for key, said in (("flipped", "flipped horizontally"), ("turned", "turned half round")):
        status, message, layers = gimp[key]
        assert status == "execution-error" and layers == 2, gimp[key]  # the first render and the re-render only
        assert message.startswith(f"hostplug: error: this image was {said} since the raw's render"), message


def test_rerender_refuses_a_cropped_image(gimp: dict) -> None:
    # a tester's re-render of a cropped image added a full frame at 0,0 that lined up with nothing, and said success
    status, message, layers = gimp["cropped"]
    assert status == "execution-error" and layers == 2  # the first re-render's and the background: nothing added
    width, height = gimp["size"]
    assert message.startswith(f"hostplug: error: this image is {width // 2} x {height // 2} now, not the {width} x "
                              f"{height} of the raw's render"), message


def test_rerender_refuses_another_photo_under_the_raws_name(gimp: dict) -> None:
    # a tester's re-render stacked another photo's render over the image, as a card's counter restarted
    status, message, layers = gimp["other_photo"]
    assert status == "execution-error" and layers == 2
    assert message.startswith("hostplug: error: the file at ") and "is not the raw this image was rendered" in message


def test_an_undecodable_raw_is_an_error_message_and_gimp_carries_on(gimp: dict) -> None:
    status, message = gimp["bad"]
    assert status == "execution-error"
    assert message.startswith("hostplug: error:") and "broken é.CR2" in message
    assert "Traceback" not in gimp["log"]  # no plug-in crashed; the probe went on to print its result


KILL_PROBE = r'''
import os
from gi.repository import Gimp, Gio
Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(os.environ["HP_KILL_RAW"]))
'''


def test_a_gimp_stopped_mid_open_leaves_no_render_and_no_renderer_behind(gimp: dict) -> None:
    # GIMP stopped while its plug-in waited for a render: the plug-in rendered on for the whole render, then died on
    # the broken pipe before its clean-up, leaving the render (100 MB for an 18 MP raw) in the temporary folder
    work, env = Path(gimp["work"]), dict(gimp["env"])
    tmp = work / "tmp"
    tmp.mkdir()
    probe = work / "kill-probe.py"
    probe.write_text(KILL_PROBE, encoding="utf-8")
    env["TMPDIR"] = str(tmp)  # the service is stopped: this open starts it, which takes seconds
    # an 18 MP raw: its render takes seconds more (the small chart's was done within the second this test waits)
    env["HP_KILL_RAW"] = str(shutil.copy(need(SONY), work / "Raws à voir" / "DSC2164.ARW"))
    command = ["chroot", str(ROOT), "env", *(f"{k}={v}" for k, v in env.items()), "gimp-console-3.0", "-i",
               "--batch-interpreter=python-fu-eval", "-b", f"exec(open({str(probe)!r}).read())", "--quit"]
    gimp_process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp.glob("hostplug-gimp-*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(tmp.glob("hostplug-gimp-*")), "the plug-in made no render folder"
        time.sleep(1.0)
        gimp_process.terminate()
        gimp_process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while (list(tmp.glob("hostplug-*")) or _plugin_running()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list(tmp.glob("hostplug-*")) == [] and not _plugin_running()  # GIMP keeps its own tmp/gimp
    finally:
        gimp_process.kill()
        stop_service(env)


def _plugin_running() -> bool:
    """Whether a hostplug GIMP plug-in process is running."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"hostplug-raw.py" in cmdline.read_bytes():
                return True
        except OSError:
            pass
    return False
