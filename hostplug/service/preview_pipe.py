"""Previews for an editor's live dialog, over a pipe: ``python -m hostplug.service.preview_pipe``.

An editor that cannot import hostplug itself (GIMP's Python has no numpy or torch) starts this once per dialog
and writes one JSON request per line on its stdin: ``{"input": RAW, "recipe": {...}, "long_edge": N}``. For each,
it answers on stdout with one JSON line, ``{"ok": true, "width": W, "height": H, "seconds": s, "ran": [...],
"white_balance": {"temperature": K, "tint": t}, "bytes": n}`` (the white balance the preview came to) followed
by ``n`` bytes of 8-bit RGB pixels (rows top down), or ``{"ok": false, "error": "one line"}``. The preview comes
from the render service (:func:`hostplug.service.client.preview`, which starts one when none is running), so
this process stays light: no numpy, torch or rawpy. It exits when stdin closes.
"""

from __future__ import annotations

import json
import sys
from typing import Any, BinaryIO

from engine.errors import HostplugError
from hostplug.service import client
from hostplug.service.protocol import ServiceError


def answer(request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The header and pixels for one request (an error header and no pixels when it failed)."""
    try:
        result = client.preview(request["input"], recipe=request.get("recipe"), changes=request.get("changes"),
                                long_edge=request.get("long_edge"), why=True)
    except ServiceError as e:  # no service to ask (switched off, would not start, lost twice, hung): say which
        return {"ok": False, "error": f"no preview: {e}"}, b""
    except HostplugError as e:
        return {"ok": False, "error": str(e)}, b""
    except (KeyError, TypeError) as e:
        return {"ok": False, "error": f"a preview request needs an input ({e})"}, b""
    assert result is not None  # with why=True, a service that cannot be used raises
    payload = result.pop("payload")
    header = {"ok": True, "bytes": len(payload),
              **{k: result[k] for k in ("width", "height", "seconds", "ran", "recipe")},
              "white_balance": result.get("white_balance")}  # (an older service's answer holds none)
    return header, payload


def serve(requests: BinaryIO, out: BinaryIO) -> None:
    """Answer every request line until ``requests`` ends."""
    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            header, payload = answer(request) if isinstance(request, dict) else ({"ok": False,
                                                                                "error": "not a JSON object"}, b"")
        except ValueError as e:
            header, payload = {"ok": False, "error": f"the request is not JSON ({e})"}, b""
        except RecursionError:  # json recurses once per level of nesting
            header, payload = {"ok": False, "error": "the request nests JSON too deeply"}, b""
        out.write(json.dumps(header).encode() + b"\n" + payload)
        out.flush()


def main() -> int:
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
