"""The render service's ``preview`` request: pixels after the JSON answer, the stage cache reused across changes,
the same pixels as an in-process preview render, bad arguments as one line, and the service's status showing the
cache. Services run this checkout's code (``PYTHONPATH``), in the private runtime folders of test_service."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from hostplug.service import client, preview_pipe
from tests.conftest import REPO, SAMPLE_DNG
from tests.test_service import runtime as runtime  # noqa: F401 - the fixture, re-used

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="SO_PEERCRED is Linux's")


@pytest.fixture
def service(runtime: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:  # noqa: F811
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the service runs this checkout, whatever copy is installed
    client.call("ping", start=True)
    yield runtime


def pixels(answer: dict) -> np.ndarray:
    assert answer["format"] == "rgb8"
    return np.frombuffer(answer["payload"], dtype=np.uint8).reshape(answer["height"], answer["width"], 3)


def test_a_preview_comes_back_as_pixels_and_reuses_the_stages_upstream_of_a_change(service: Path) -> None:
    import engine
    from engine.pipeline import STAGE_ORDER, render
    from engine.recipe import Recipe

    base = {"style": "natural", "exposure": 0.0}
    first = client.preview(SAMPLE_DNG, recipe=base, long_edge=450)
    assert first is not None and first["ran"] == list(STAGE_ORDER)
    assert (first["width"], first["height"]) == (450, 300) and first["payload_bytes"] == 450 * 300 * 3
    brighter = client.preview(SAMPLE_DNG, recipe={**base, "exposure": 1.0}, long_edge=450)
    assert brighter["ran"] == ["photofinish", "upsample", "detail"]
    assert pixels(brighter).mean() > pixels(first).mean() + 20
    # the white balance it came to, for a dialog's greyed fields: the raw's as shot, kept by a resumed render
    assert first["white_balance"] == brighter["white_balance"] and first["white_balance"]["temperature"] > 4000
    warmer = client.preview(SAMPLE_DNG, recipe=base, changes={"temperature": 3500.0}, long_edge=450)
    assert warmer["ran"] == list(STAGE_ORDER[STAGE_ORDER.index("white_balance"):])
    assert warmer["recipe"]["wb"] == "custom" and warmer["white_balance"]["temperature"] == 3500.0
    # The same pixels as the engine's own preview render in this process (8-bit, rounded).
    local = render(engine.open(SAMPLE_DNG), Recipe.from_dict(warmer["recipe"]), preview=450).pixels
    assert np.array_equal(pixels(warmer), cv2.convertScaleAbs(local, alpha=255.0))
    stats = client.status()["previews"]
    assert stats["hits"] == 2 and stats["misses"] == 1 and stats["bytes"] > 0


def test_a_preview_as_png(service: Path) -> None:
    answer = client.preview(SAMPLE_DNG, long_edge=300, format="png")
    assert answer is not None and answer["payload"].startswith(b"\x89PNG")
    decoded = cv2.imdecode(np.frombuffer(answer["payload"], dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (200, 300, 3)
    raw = client.preview(SAMPLE_DNG, long_edge=300)
    assert np.array_equal(decoded[..., ::-1], pixels(raw))


@pytest.mark.parametrize(("args", "message"), [
    ({"long_edge": 5}, "long_edge 5 is not a whole number of pixels"),
    ({"long_edge": "big"}, "long_edge 'big' is not"),
    ({"format": "jpeg"}, "format 'jpeg' is not rgb8 or png"),
    ({"recipe": {"exposure": 99}}, "exposure"),
])
def test_a_bad_preview_request_is_one_line(service: Path, args: dict, message: str) -> None:
    with pytest.raises(client.RemoteError) as refused:
        client.call("preview", {"input": str(SAMPLE_DNG), **args})
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert client.status() is not None  # the service lives on


def test_a_missing_raw_is_one_line_with_its_exit_status(service: Path, tmp_path: Path) -> None:
    with pytest.raises(client.RemoteError) as refused:
        client.preview(tmp_path / "gone.dng")
    assert "gone.dng" in str(refused.value) and refused.value.exit_code != 0


def test_without_a_service_there_is_no_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(client.ENV_DISABLE, "1")
    assert client.preview(SAMPLE_DNG) is None


def test_a_preview_whose_service_is_lost_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # a service killed during a GIMP preview gave "the render service cannot be used (see its serve.log)"
    asked: list[str] = []

    def killed_once(op: str, args: dict, start: bool = False) -> dict:
        asked.append(op)
        if len(asked) == 1:
            raise client.ServiceLostError("the render service (pid 4242) went away during the request (reset)", 4242)
        return {"width": 1, "height": 1, "seconds": 0.1, "ran": [], "recipe": {}, "payload": b"\0\0\0"}

    monkeypatch.setattr(client, "call", killed_once)
    header, payload = preview_pipe.answer({"input": str(SAMPLE_DNG)})
    assert header["ok"] and payload == b"\0\0\0" and asked == ["preview", "preview"]


@pytest.mark.parametrize("error", [
    client.ServiceLostError("the render service (pid 4242) went away during the request (reset)", 4242),
    client.StartError("the render service did not start (exit status 1; see /run/user/1/hostplug/serve.log)"),
])
def test_a_preview_without_a_service_says_why(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def fails(op: str, args: dict, start: bool = False) -> dict:
        raise error

    monkeypatch.setattr(client, "call", fails)
    header, payload = preview_pipe.answer({"input": str(SAMPLE_DNG)})
    assert header == {"ok": False, "error": f"no preview: {error}"} and payload == b""
    monkeypatch.undo()
    monkeypatch.setenv(client.ENV_DISABLE, "1")
    assert preview_pipe.answer({"input": str(SAMPLE_DNG)})[0]["error"] == (
        "no preview: the render service is switched off (HOSTPLUG_NO_SERVICE) or not supported here")
