"""GIMP's "Re-render with hostplug..." dialog, for real: GIMP 3's interface on a virtual X server (Xvfb), the
dialog opened on a raw that the plug-in loaded, a live preview from the render service, the exposure control
changed with real key presses (xdotool), and screenshots (ImageMagick's ``import``) that show the preview
brighten after +1 EV.

Everything runs in the Debian 13 root that ``tests/setup-gimp.sh`` prepares (it also installs Xvfb, xdotool and
ImageMagick there); the test skips, saying why, where that cannot be done. The plug-in and its render service run
this checkout's hostplug (wrappers set ``PYTHONPATH``), with a private runtime folder, stopped afterwards. Under
``HOSTPLUG_GIMP_DIALOG_TEST`` the dialog notes where each preview it shows lies on the screen, and puts the
keyboard focus on the exposure control once the first preview is there; the rest is what a user does.
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

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hostplug.cli import main
from tests.conftest import REPO, SAMPLE_DNG
from tests.test_gimp_plugin import ROOT, _prepare_root, stop_service, unmount

DIALOG = "Re-render with hostplug"
PREVIEW_WAIT_S = 240  # the first preview starts the service and loads the engine, on a busy 2-core machine

# Runs inside GIMP (python-fu-eval): open the raw through the plug-in, then its dialog, interactively.
PROBE = r'''
import json, os
from gi.repository import Gimp, Gio
image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(os.environ["HP_RAW"]))
proc = Gimp.get_pdb().lookup_procedure("plug-in-hostplug-rerender")
config = proc.create_config()
config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
config.set_property("image", image)
result = proc.run(config)
message = result.index(1) if result.length() > 1 else None
print("HOSTPLUG-RESULT " + json.dumps({"dialog": result.index(0).value_nick, "message": str(message)}), flush=True)
'''


def in_root(*command: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a command inside the GIMP root."""
    prefix = ["chroot", str(ROOT), "env", *(f"{k}={v}" for k, v in (env or {}).items())]
    return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, **kwargs)


def wrapper(folder: Path, name: str, command: str) -> Path:
    """A script that runs ``command`` with this checkout first on Python's path (the plug-in drops PYTHONPATH)."""
    path = folder / name
    path.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {command} "$@"\n')
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def session() -> Iterator[dict]:
    """Xvfb, GIMP with the plug-in and the dialog open on the bundled sample; yields what the test needs."""
    binds = _prepare_root()
    for tool in ("Xvfb", "xdotool", "import", "gimp-3.0"):
        if not os.path.lexists(ROOT / "usr/bin" / tool):  # links through the root's /etc/alternatives
            pytest.skip(f"{tool} is not installed in {ROOT} (tests/setup-gimp.sh installs it)")
    work = Path(tempfile.mkdtemp(prefix="hostplug-dialog-", dir="/tmp"))  # /tmp: the same folder in the root
    processes: list[subprocess.Popen] = []
    env: dict[str, str] = {}
    try:
        raw = Path(shutil.copy(SAMPLE_DNG, work / "sample.dng"))
        (work / "notes").mkdir()
        (work / "runtime").mkdir(mode=0o700)
        profile = work / "profile"
        installed = CliRunner(env={"GIMP3_DIRECTORY": str(profile)}).invoke(
            main, ["integrate", "gimp"], catch_exceptions=False)
        assert installed.exit_code == 0, installed.output
        config_path = next(profile.rglob("hostplug-raw.json"))
        cli = f"{sys.executable} -c 'from hostplug.cli import main; main()'"
        config = {"python": str(wrapper(work, "python", sys.executable)),
                  "hostplug": str(wrapper(work, "hostplug", cli))}
        config_path.write_text(json.dumps(config))
        (work / "probe.py").write_text(PROBE)
        # Xvfb picks a free display and says which (-displayfd): other tests may run X servers too.
        xvfb = subprocess.Popen(["chroot", str(ROOT), "Xvfb", "-displayfd", "1", "-screen", "0", "1280x1024x24",
                                 "-nolisten", "tcp"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        processes.append(xvfb)
        assert xvfb.stdout is not None
        display = ":" + xvfb.stdout.readline().strip()
        assert display != ":", "Xvfb did not start"
        env = {"HOME": "/root", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "DISPLAY": display,
               "GIMP3_DIRECTORY": str(profile), "XDG_RUNTIME_DIR": str(work / "runtime"), "HP_RAW": str(raw),
               "HOSTPLUG_GIMP_DIALOG_TEST": str(work / "notes"), "HOSTPLUG_SERVICE_IDLE_TIMEOUT": "300",
               "HOSTPLUG_SERVICE_BUILD": "dialog-test",  # others' edits of the tree must not make it stale
               "NO_AT_BRIDGE": "1"}
        prefix = ["chroot", str(ROOT), "env", *(f"{k}={v}" for k, v in env.items())]
        with open(work / "gimp.log", "w") as log:
            processes.append(subprocess.Popen(
                [*prefix, "gimp-3.0", "--no-splash", "--batch-interpreter=python-fu-eval", "-b",
                 f"exec(open({str(work / 'probe.py')!r}).read())", "--quit"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        yield {"work": work, "env": env, "gimp": processes[-1], "log": work / "gimp.log"}
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                with_group = process is not processes[0]
                os.killpg(process.pid, signal.SIGTERM) if with_group else process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL) if with_group else process.kill()
        try:
            if env:
                stop_service({**env, "PYTHONPATH": str(REPO)})  # and wait for it to exit: it holds the root's /tmp
        finally:
            shutil.rmtree(work, ignore_errors=True)
            unmount(binds)


def wait_for(condition, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def note(session: dict, exposure: float | None = None) -> dict:
    """The latest preview the dialog showed (with that exposure, when given), waiting for it."""
    folder = session["work"] / "notes"

    def latest() -> dict | None:
        notes = sorted(folder.glob("preview-*.json"), key=lambda p: int(p.stem.split("-")[1]))
        found = json.loads(notes[-1].read_text()) if notes else None
        return found if found and (exposure is None or found["exposure"] == exposure) else None

    def failed() -> bool:
        return session["gimp"].poll() is not None

    assert wait_for(lambda: latest() is not None or failed(), PREVIEW_WAIT_S), \
        f"no preview shown (exposure {exposure}); GIMP said:\n{session['log'].read_text()[-3000:]}"
    assert not failed() or latest(), f"GIMP stopped:\n{session['log'].read_text()[-3000:]}"
    found = latest()
    assert found is not None
    return found


def screenshot(session: dict, name: str) -> np.ndarray:
    """The whole virtual screen, as GIMP's interface draws it (RGB, 8-bit)."""
    path = session["work"] / name
    done = in_root("import", "-window", "root", str(path), env=session["env"])  # on the env's DISPLAY
    assert done.returncode == 0, done.stderr
    return np.asarray(Image.open(path).convert("RGB"))


def xdotool(session: dict, *args: str) -> None:
    done = in_root("xdotool", *args, env=session["env"])
    assert done.returncode == 0, done.stderr


def crop(shot: np.ndarray, box: list[int]) -> np.ndarray:
    x, y, w, h = box
    return shot[y:y + h, x:x + w]


def test_the_dialog_shows_a_live_preview_that_follows_the_exposure_control(session: dict) -> None:
    first = note(session)
    assert first["exposure"] == 0.0
    # as shot: the temperature is greyed out (a tester typed 2500 K there, which the render rightly ignored)
    assert first["temperature_editable"] is False
    before = crop(screenshot(session, "before.png"), first["preview"])
    assert before.size and before.std() > 10  # a picture, not an empty box

    windows = in_root("xdotool", "search", "--name", DIALOG, env=session["env"]).stdout.split()
    assert windows, "the dialog's window is not on the screen"
    xdotool(session, "windowfocus", "--sync", windows[-1])
    # The focus is on the exposure control (the dialog put it there for the test): type 1 EV, leave the field.
    xdotool(session, "key", "ctrl+a")
    xdotool(session, "type", "1")
    xdotool(session, "key", "Tab")
    second = note(session, exposure=1.0)
    assert second["ran"] == ["photofinish", "upsample", "detail"]  # decoding and the rest came from the cache
    after = crop(screenshot(session, "after.png"), second["preview"])
    assert after.shape == before.shape
    assert after.mean() > before.mean() + 15, (before.mean(), after.mean())
    # the dialog kept its width as the line under the preview changed (a tester's grew, moving every control)
    assert second["preview"][0] == first["preview"][0], (first["preview"], second["preview"])
    print(f"preview after +1 EV: {second['round_trip']:.2f} s from the dialog's request to its pixels, "
          f"{second['seconds']:.2f} s in the render service")

    xdotool(session, "key", "Escape")  # cancel: no new layer; GIMP then quits
    session["gimp"].wait(timeout=120)
    assert '"dialog": "cancel"' in session["log"].read_text()
