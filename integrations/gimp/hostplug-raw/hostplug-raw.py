#!/usr/bin/env python3
"""hostplug for GIMP 3: open camera raws through hostplug's ISP, and re-render them later.

Installed by ``hostplug integrate gimp`` into GIMP's plug-in folder as ``hostplug-raw/hostplug-raw.py``, with
``hostplug-raw.json`` beside it naming the ``hostplug`` command and Python interpreter to run: GIMP's own Python
has no torch, so every render happens in a ``hostplug`` process and comes back as a 16-bit TIFF, which GIMP's own
TIFF loader reads (16-bit precision, embedded ICC profile honoured). That process asks hostplug's resident render
service (``hostplug serve``, started on first use) to render, so the engine and models load once per session, not
once per raw; without a service it renders itself.

Procedures:
- ``file-hostplug-raw-load``: a raw loader (GIMP's Preferences > Import & Export > Raw Image Importer lists it);
  the opened image keeps its raw and recipe in the persistent parasite ``hostplug-recipe`` (saved in XCF).
- ``file-hostplug-raw-load-thumb``: the raw's embedded preview, for GIMP's file dialog.
- ``plug-in-hostplug-rerender``: Image > Re-render with hostplug..., which renders the raw again with another
  style or adjustments and adds the result as a new layer. Its dialog shows a live preview: each change of a
  setting (debounced) asks the render service for a ~2 MP preview, which re-runs only the stages the change
  affects (``python -m hostplug.service.preview_pipe``, started once per dialog, carries the requests).
Errors go to GIMP's message console and the procedure's return values; the plug-in never crashes GIMP.
"""

import hashlib
import json
import math
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp  # noqa: E402

gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf, GimpUi, Gio, GLib, GObject, Gtk  # noqa: E402

LOAD_PROC = "file-hostplug-raw-load"
THUMB_PROC = "file-hostplug-raw-load-thumb"
RERENDER_PROC = "plug-in-hostplug-rerender"
PARASITE = "hostplug-recipe"
RECORD_TAGS = "Xmp.hostplug."  # the render's record in an image's metadata (GIMP's names of hostplug's XMP)
# The render TIFF's own layout and profile, which GIMP's TIFF loader keeps in the image's metadata: none of it is
# true of what GIMP exports later (a tester's JPEG after a profile conversion carried the TIFF's sRGB profile in
# its EXIF beside the real one), and the XMP packet as an EXIF tag would keep the first render's record.
TIFF_LAYOUT_TAGS = frozenset("Exif.Image." + name for name in (
    "NewSubfileType", "SubfileType", "ImageWidth", "ImageLength", "BitsPerSample", "Compression",
    "PhotometricInterpretation", "FillOrder", "StripOffsets", "SamplesPerPixel", "RowsPerStrip", "StripByteCounts",
    "PlanarConfiguration", "Predictor", "TileWidth", "TileLength", "TileOffsets", "TileByteCounts", "SubIFDs",
    "ExtraSamples", "SampleFormat", "JPEGTables", "TransferFunction", "InterColorProfile", "XMLPacket"))
CONFIG_NAME = "hostplug-raw.json"
NOTE = "hostplug: note:"  # how hostplug begins a line the user should read though the command succeeded
RENDER_TIMEOUT_S = 600
STALE_FOLDER_S = 2 * RENDER_TIMEOUT_S  # a render folder this old was left by a GIMP that was killed
PR_SET_PDEATHSIG = 1  # prctl(2)
GIMP_PID = os.getppid()  # the GIMP that started this plug-in
PRINT_SIZE = 24  # the long side of a render's print, which tells a flipped image from the render (picture_print)
_COMPONENTS = {"u8": ("B", 255), "u16": ("H", 65535), "u32": ("I", 4294967295), "half": ("e", 1.0),
               "float": ("f", 1.0), "double": ("d", 1.0)}  # GIMP's precisions: struct code, value of white
FLIP_MATCH, FLIP_MARGIN = 0.6, 0.25  # a flip is refused when it matches this well, and this much better than as is
PREVIEW_LONG_EDGE = 1732  # about 2 MP from the render service, shown scaled into the dialog's preview box
PREVIEW_BOX = (512, 384)
PREVIEW_LABEL = (72, 2)  # the line under the preview: characters wide, lines high (its size never changes the dialog's)
DEBOUNCE_MS = 150  # a slider drag asks for one preview when it pauses, not one per step
ENV_DIALOG_TEST = "HOSTPLUG_GIMP_DIALOG_TEST"  # a folder: the dialog notes each preview it shows there (tests)

# Suffix -> MIME type of every raw format LibRaw reads (kept equal to engine/io/formats.py by a test).
RAW_FORMATS = {
    "3fr": "image/x-hasselblad-3fr",
    "ari": "image/x-arri-ari",
    "arw": "image/x-sony-arw",
    "bay": "image/x-casio-bay",
    "cap": "image/x-phaseone-cap",
    "cr2": "image/x-canon-cr2",
    "cr3": "image/x-canon-cr3",
    "crw": "image/x-canon-crw",
    "dcr": "image/x-kodak-dcr",
    "dcs": "image/x-kodak-dcs",
    "dng": "image/x-adobe-dng",
    "drf": "image/x-kodak-drf",
    "eip": "image/x-phaseone-eip",
    "erf": "image/x-epson-erf",
    "fff": "image/x-hasselblad-fff",
    "gpr": "image/x-gopro-gpr",
    "iiq": "image/x-phaseone-iiq",
    "k25": "image/x-kodak-k25",
    "kdc": "image/x-kodak-kdc",
    "mdc": "image/x-minolta-mdc",
    "mef": "image/x-mamiya-mef",
    "mos": "image/x-leaf-mos",
    "mrw": "image/x-minolta-mrw",
    "nef": "image/x-nikon-nef",
    "nrw": "image/x-nikon-nrw",
    "orf": "image/x-olympus-orf",
    "ori": "image/x-olympus-ori",
    "pef": "image/x-pentax-pef",
    "ptx": "image/x-pentax-ptx",
    "raf": "image/x-fuji-raf",
    "raw": "image/x-panasonic-raw",
    "rw2": "image/x-panasonic-rw2",
    "rwl": "image/x-leica-rwl",
    "rwz": "image/x-rawzor",
    "sr2": "image/x-sony-sr2",
    "srf": "image/x-sony-srf",
    "srw": "image/x-samsung-srw",
    "sti": "image/x-sinar-sti",
    "x3f": "image/x-sigma-x3f",
}

# The adjustments the re-render dialog offers: (name, label, low, high, default). Names are recipe keys; the
# ranges are engine.recipe.RANGES (a test keeps them equal: this file cannot import the engine).
WB_ADJUSTMENTS = (
    ("temperature", "_Temperature (K)", 1700.0, 25000.0, 5500.0),
    ("tint", "T_int", -150.0, 150.0, 0.0),
)
ADJUSTMENTS = (
    ("exposure", "_Exposure (EV)", -6.0, 6.0, 0.0),
    ("contrast", "_Contrast", -100.0, 100.0, 0.0),
    ("highlights", "_Highlights", -100.0, 100.0, 0.0),
    ("shadows", "_Shadows", -100.0, 100.0, 0.0),
    ("saturation", "Satu_ration", -100.0, 100.0, 0.0),
    ("vibrance", "_Vibrance", -100.0, 100.0, 0.0),
)
WB_CHOICES = (("as-shot", "As shot"), ("auto", "Automatic"), ("custom", "Temperature and tint"))
DEFAULT_STYLE = "natural"
DEFAULT_WB = "as-shot"


class PluginError(Exception):
    """A render or a setting failed; the message is what the user reads in GIMP's console. ``settings``: the
    settings asked for are at fault (hostplug's exit 2 or 4), not the file or the machine."""

    def __init__(self, message, settings=False):
        super().__init__(message)
        self.settings = settings


# ----- talking to hostplug -------------------------------------------------------------------------------


def plugin_config():
    """The settings ``hostplug integrate gimp`` wrote beside this file: {"hostplug": path, "python": path}."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), CONFIG_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise PluginError(f"hostplug: cannot read {path} ({e}); run 'hostplug integrate gimp' again") from e
    if not isinstance(config, dict) or not config.get("hostplug"):
        raise PluginError(f"hostplug: {path} names no hostplug command; run 'hostplug integrate gimp' again")
    return config


def child_environment():
    """GIMP's environment without the Python settings of GIMP's own interpreter."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(name, None)
    return env


def die_with_gimp():
    """Stop when GIMP does. A GIMP killed mid-open left this plug-in rendering on for its child's whole render,
    then exiting on the broken pipe without its clean-up: a 100 MB render in the temporary folder. The kernel now
    sends SIGTERM when GIMP goes (Linux), which stops the render (subprocess kills its child) and runs the
    ``finally`` clean-ups. Called as each procedure starts: libgimp installs its own SIGTERM handler (which exits
    at once) when the plug-in starts."""
    try:
        import ctypes

        # PR_SET_PDEATHSIG fires when the parent's spawning thread ends: GIMP spawns plug-ins from its main thread
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            return
    except (OSError, AttributeError):  # no prctl: not Linux
        return
    signal.signal(signal.SIGTERM, _terminated)
    if os.getppid() != GIMP_PID:  # GIMP went before the request was made (its orphan adopted by init or a subreaper)
        _terminated(signal.SIGTERM, None)


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


def temporary_folder(prefix):
    """A new folder for one render, after removing what earlier ones left: a GIMP killed as it read the render (a
    signal cannot interrupt that) leaves its folder. Only this user's, and only older than any render takes."""
    base = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(base) if n.startswith("hostplug-gimp-")]
    except OSError:
        names = []
    for name in names:
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and time.time() - st.st_mtime > STALE_FOLDER_S:
            shutil.rmtree(path, ignore_errors=True)
    return tempfile.mkdtemp(prefix=prefix)


def run_command(args):
    """Run a hostplug command; (its stdout, its notes: the stderr lines that begin ``hostplug: note:``, such as a
    hung render service's, which the user should read), or PluginError with hostplug's own one-line error."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S,
                              env=child_environment(), stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise PluginError(f"hostplug: {args[0]} is not there any more; run 'hostplug integrate gimp' "
                              "again") from e
    except subprocess.TimeoutExpired as e:
        raise PluginError(f"hostplug: the render took longer than {RENDER_TIMEOUT_S} s and was stopped") from e
    except OSError as e:
        raise PluginError(f"hostplug: cannot run {args[0]} ({e.strerror})") from e
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("hostplug: error:")]
        if errors:
            raise PluginError(errors[-1], settings=done.returncode in (2, 4))
        if done.returncode < 0:  # killed: the kernel's out-of-memory killer, likely, on a very large raw
            raise PluginError(f"hostplug: the render was stopped by signal {-done.returncode} (out of memory?)")
        # no line of hostplug's own: the command itself is broken (a traceback); say what it said and what to do
        said = f" ({lines[-1].strip()})" if lines else ""
        raise PluginError(f"hostplug: {args[0]} failed with exit status {done.returncode}{said}; reinstall "
                          "hostplug, then run 'hostplug integrate gimp' again")
    return done.stdout, [line.strip() for line in done.stderr.splitlines() if line.startswith(NOTE)]


def last_json_line(text, what):
    """The last JSON object hostplug printed on stdout; ``what`` names the run (\"the render of RAW\") when it printed
    none: a hostplug that exits 0 without its result is a broken install (a tester's message named neither the raw
    nor what to do)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    raise PluginError(f"hostplug: {what} printed no result; reinstall hostplug, then run 'hostplug integrate gimp' "
                      "again")


def render_raw(raw_path, folder, recipe=None):
    """Render ``raw_path`` to a 16-bit TIFF in ``folder``; returns (tiff path, hostplug's JSON result, the notes
    for the user: hostplug's, and the result's notice, such as a sidecar's crop not applied)."""
    config = plugin_config()
    output = os.path.join(folder, "render.tif")
    args = [config["hostplug"], "render", raw_path, "-o", output, "--format", "tiff", "--bits", "16", "--json",
            "--service"]  # through the resident service, started if none is running (in-process if it cannot be)
    if recipe is not None:
        recipe_file = os.path.join(folder, "recipe.json")
        with open(recipe_file, "w", encoding="utf-8") as f:
            json.dump(recipe, f)
        args += ["--recipe", recipe_file]
    try:
        said, notes = run_command(args)
        result = last_json_line(said, f"the render of {raw_path}")
    except PluginError as e:
        if recipe is None:
            raise
        # the recipe file is the plug-in's own, gone once the render ends: the message names the setting alone;
        # whether the settings are at fault stays (the dialog opens again with what was typed)
        raise PluginError(str(e).replace(recipe_file + ": ", ""), settings=e.settings) from None
    if not os.path.isfile(output):
        raise PluginError(f"hostplug: the render of {raw_path} wrote no image")
    return output, result, notes_for_user(notes, result)


def notes_for_user(notes, result):
    """hostplug's ``notes`` and its ``result``'s notice (which --json leaves to the caller), each one line: a
    tester's Lightroom crop that was not applied, and a hung service passed by, were never said in GIMP."""
    notice = result.get("notice")
    lines = [*notes, *([f"{NOTE} {notice}"] if isinstance(notice, str) and notice.strip() else [])]
    return [" ".join(line.split()) for line in lines]


def tell(notes):
    """Show each note in GIMP's message console (after the image or layer it concerns is there)."""
    for note in notes:
        Gimp.message(note)


def write_thumbnail(raw_path, folder, size):
    """The raw's embedded preview as a JPEG in ``folder``; returns (jpeg path, full width, full height)."""
    config = plugin_config()
    python = config.get("python") or sys.executable
    output = os.path.join(folder, "thumbnail.jpg")
    said, _notes = run_command([python, "-m", "hostplug.thumbnail", raw_path, output, str(size)])
    result = last_json_line(said, f"the preview of {raw_path}")
    return output, int(result.get("width", 0)), int(result.get("height", 0))


# ----- the image's memory of its raw ---------------------------------------------------------------------


def file_sha256(path):
    """The SHA-256 of a file's content, as hostplug records its source's (``hostplug rerender`` checks it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def attach_recipe(image, raw_path, result, sha256, size, picture=None, undoable=False):
    """Store the raw's path, its content's SHA-256, the recipe and the temperature and tint its white balance came
    to (hostplug's render ``result``), the render's ``size`` (width, height) and ``picture``, its print
    (:func:`picture_print`), in the image (persistent: saved with XCF files; ``undoable``: a re-render's, which an
    undo of its layer takes back too, a tester's undo left the undone recipe in the image)."""
    stored = {"raw": raw_path, "recipe": result.get("recipe") or {}, "sha256": sha256,
              "white": result.get("white_balance"), "size": list(size), "print": picture}
    data = json.dumps(stored, sort_keys=True).encode("utf-8")
    flags = Gimp.PARASITE_PERSISTENT | (Gimp.PARASITE_UNDOABLE if undoable else 0)
    image.attach_parasite(Gimp.Parasite.new(PARASITE, flags, list(data)))


def without_tiff_layout(tags):
    """Take the render TIFF's layout and profile tags (TIFF_LAYOUT_TAGS) out of ``tags``, an element tree of GIMP's
    serialized metadata; whether any were there."""
    found = [tag for tag in tags if tag.get("name") in TIFF_LAYOUT_TAGS]
    for tag in found:
        tags.remove(tag)
    return bool(found)


def drop_tiff_layout(image):
    """Keep in ``image``'s metadata what is true of the picture, not of the TIFF it was read from."""
    import xml.etree.ElementTree as ElementTree

    current = image.get_metadata()
    if current is None:
        return
    tags = ElementTree.fromstring(current.serialize())
    if without_tiff_layout(tags):
        image.set_metadata(Gimp.Metadata.deserialize(ElementTree.tostring(tags, encoding="unicode")))


def take_render_record(image, tiff):
    """Put the record of the render ``tiff`` (hostplug's XMP: recipe, source, decisions) into the image's metadata
    in place of the earlier render's, keeping everything else in it: what GIMP exports carries the recipe of the
    top layer's pixels (a tester's export after a re-render recorded the first render's)."""
    import xml.etree.ElementTree as ElementTree

    current = image.get_metadata()
    rendered = Gimp.Metadata.load_from_file(Gio.File.new_for_path(tiff))
    if current is None or rendered is None:
        return
    merged = ElementTree.fromstring(current.serialize())
    for tag in [t for t in merged if t.get("name", "").startswith(RECORD_TAGS)]:
        merged.remove(tag)
    merged.extend(t for t in ElementTree.fromstring(rendered.serialize()) if t.get("name", "").startswith(RECORD_TAGS))
    without_tiff_layout(merged)  # an image an older plug-in opened still holds them
    image.set_metadata(Gimp.Metadata.deserialize(ElementTree.tostring(merged, encoding="unicode")))


def read_recipe(image):
    """(raw path, recipe dict, the raw's SHA-256 or None, the temperature and tint its render came to: {} for an
    older plug-in's image, the render's (width, height) or None) stored in the image; PluginError when it has
    none."""
    parasite = image.get_parasite(PARASITE)
    if parasite is None:
        raise PluginError("hostplug: this image was not opened from a raw through hostplug "
                          "(it has no hostplug-recipe parasite)")
    try:
        stored = json.loads(bytes(parasite.get_data()).decode("utf-8"))
        raw, recipe, sha256, white = stored["raw"], stored.get("recipe", {}), stored.get("sha256"), stored.get("white")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise PluginError("hostplug: the image's hostplug-recipe parasite is damaged") from e
    if not isinstance(raw, str) or not isinstance(recipe, dict) or not isinstance(sha256, (str, type(None))):
        raise PluginError("hostplug: the image's hostplug-recipe parasite is damaged")
    white = {k: float(v) for k, v in white.items() if isinstance(v, (int, float)) and math.isfinite(v)} \
        if isinstance(white, dict) else {}  # (JSON from a damaged XCF may hold NaN: left out, as a missing value)
    size = stored.get("size")
    size = tuple(size) if isinstance(size, list) and len(size) == 2 and all(type(n) is int for n in size) else None
    return raw, dict(recipe), sha256, white, size


def check_same_size(image, rendered):
    """PluginError unless ``image`` (width, height) is the ``rendered`` size of the raw's render (None: not
    known): a re-render of a cropped, scaled or rotated image is a full frame at 0,0 that lines up with nothing (a
    tester's export then carried the wrong framing). The same geometry is not applied: GIMP keeps no record of it."""
    if rendered is None or tuple(image) == tuple(rendered):
        return
    raise PluginError(f"hostplug: this image is {image[0]} x {image[1]} now, not the {rendered[0]} x {rendered[1]} "
                      "of the raw's render it was opened as (cropped, scaled or rotated since?), so a new render "
                      "would not line up with it; open the raw again and re-render it before cropping, scaling or "
                      "rotating")


def picture_print(image, drawable=None):
    """A coarse print of ``image``'s picture (or of its ``drawable``): the luminance (0-255) of GIMP's thumbnail of
    it, at most PRINT_SIZE pixels a side, as {"width", "height", "luma": row by row}; None when GIMP gives none."""
    try:  # (a print is a help: without one nothing is refused, and an open never fails for it)
        data, width, height, bpp = (drawable or image).get_thumbnail_data(PRINT_SIZE, PRINT_SIZE)
        component = image.get_precision().value_nick.split("-")[0]  # "u8", "u16", "half", "float"...
    except (GLib.Error, TypeError, ValueError, AttributeError):
        return None
    code, scale = _COMPONENTS.get(component, (None, 1))
    pixels = bytes(data.get_data()) if data is not None else b""
    if code is None or not width or not height or bpp % struct.calcsize(code):
        return None
    channels = bpp // struct.calcsize(code)
    if channels == 0 or len(pixels) != width * height * bpp:
        return None
    values = struct.unpack(f"={len(pixels) // struct.calcsize(code)}{code}", pixels)
    luma = []
    for at in range(0, len(values), channels):
        r, g, b = values[at:at + 3] if channels >= 3 else (values[at],) * 3
        luma.append(round(255 * min(max((0.2126 * r + 0.7152 * g + 0.0722 * b) / scale, 0.0), 1.0)))
    return {"width": width, "height": height, "luma": luma}


def stored_print(image):
    """The print (:func:`picture_print`) stored with the image's render; None for an older plug-in's image or a
    damaged one (nothing is refused on it)."""
    parasite = image.get_parasite(PARASITE)
    try:
        picture = json.loads(bytes(parasite.get_data()).decode("utf-8")).get("print")
        width, height, luma = picture["width"], picture["height"], picture["luma"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if type(width) is int and type(height) is int and isinstance(luma, list) and len(luma) == width * height > 1 \
            and all(type(v) is int for v in luma):
        return picture
    return None


def _correlation(a, b):
    """Pearson's correlation of two equally long lists of numbers (0 when either is flat)."""
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    da, db = [v - mean_a for v in a], [v - mean_b for v in b]
    norm = math.sqrt(sum(v * v for v in da) * sum(v * v for v in db))
    return sum(x * y for x, y in zip(da, db, strict=True)) / norm if norm else 0.0


def _turned(picture, how):
    """``picture``'s luma flipped or turned: "horizontally", "vertically" or "half" (a half turn)."""
    width, height, luma = picture["width"], picture["height"], picture["luma"]
    rows = [luma[y * width:(y + 1) * width] for y in range(height)]
    if how in ("horizontally", "half"):
        rows = [row[::-1] for row in rows]
    if how in ("vertically", "half"):
        rows = rows[::-1]
    return [v for row in rows for v in row]


def check_same_way_round(rendered, now):
    """PluginError when the picture ``now`` (its print) is the ``rendered`` one flipped or turned half round: the
    size check cannot see that, and a new render added unflipped on top lines up with nothing (a tester's). Only
    a clear match is refused: a retouched or symmetrical picture is not."""
    if rendered is None or now is None or (rendered["width"], rendered["height"]) != (now["width"], now["height"]):
        return
    as_is = _correlation(rendered["luma"], now["luma"])
    turns = {how: _correlation(_turned(rendered, how), now["luma"]) for how in ("horizontally", "vertically", "half")}
    how, best = max(turns.items(), key=lambda item: item[1])
    if best > FLIP_MATCH and best - as_is > FLIP_MARGIN:
        done = "turned half round" if how == "half" else f"flipped {how}"
        raise PluginError(f"hostplug: this image was {done} since the raw's render it was opened as, so a new "
                          "render would not line up with it; flip or turn it back, re-render, then flip or turn "
                          "the image again")


def check_same_raw(raw_path, sha256, now=None):
    """PluginError unless the file at ``raw_path`` (whose hash is ``now``, else read here) is the raw the image
    was rendered from (images opened before the hash was stored have none): a card's counter starts again, and
    another photo takes the name."""
    if sha256 is None:
        return
    try:
        now = now or file_sha256(raw_path)
    except OSError as e:
        raise PluginError(f"hostplug: cannot read the raw {raw_path} ({e.strerror or e})") from e
    if now != sha256:
        raise PluginError(f"hostplug: the file at {raw_path} is not the raw this image was rendered from (its "
                          "content changed since: a program may have written metadata into it, or it is another "
                          "photo); open that file as a new image to render it")


# ----- procedures ----------------------------------------------------------------------------------------


def failure(procedure, message, status=Gimp.PDBStatusType.EXECUTION_ERROR):
    """The procedure's error return: GIMP shows ``message`` in its error console (or dialog) and the caller
    gets it with the status, so a failed render never takes GIMP down."""
    return procedure.new_return_values(status, GLib.Error(error_line(message)))


def error_line(message):
    """``message`` as one line that begins ``hostplug: error:``, as the command line's do."""
    text = " ".join(str(message).splitlines())  # one line; a path's own spaces kept
    for prefix in ("hostplug: error: ", "hostplug: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    return "hostplug: error: " + text


def load_raw(procedure, run_mode, file, metadata, flags, config, data):
    """Load procedure: render the raw with hostplug and open the TIFF as a 16-bit image."""
    folder = None
    progress = False
    die_with_gimp()
    try:
        raw_path = file.get_path()
        if raw_path is None:
            return failure(procedure, "hostplug: can only open local files"), flags
        folder = temporary_folder("hostplug-gimp-")
        Gimp.progress_init(f"Rendering {os.path.basename(raw_path)} with hostplug")
        progress = True
        tiff, result, notes = render_raw(raw_path, folder)
        image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(tiff))
        if image is None:
            return failure(procedure, f"hostplug: GIMP could not read the render of {raw_path}"), flags
        # the hash of the bytes hostplug rendered, which it reports (an older hostplug: read again here)
        attach_recipe(image, raw_path, result, result.get("source_sha256") or file_sha256(raw_path),
                      image_size(image), picture_print(image, image.get_layers()[0]))
        drop_tiff_layout(image)
        # The image holds the TIFF's metadata, which GIMP's TIFF loader read: the raw's EXIF and GPS, and what
        # hostplug added (the sidecar's rating, keywords, credits and GPS, the recipe). GIMP must not load the
        # raw's own over it, nor rotate the pixels, upright already, by the raw's EXIF (a tester's exports lost
        # the sidecar's GPS, keywords and recipe).
        values = Gimp.ValueArray.new_from_values([
            GObject.Value(Gimp.PDBStatusType, Gimp.PDBStatusType.SUCCESS),
            GObject.Value(Gimp.Image, image),
        ])
        tell(notes)
        return values, Gimp.MetadataLoadFlags.NONE
    except PluginError as e:
        return failure(procedure, str(e)), flags
    except Exception as e:  # noqa: BLE001 - a plug-in error must reach the console, not crash GIMP
        return failure(procedure, f"hostplug: unexpected error while opening the raw: {e!r}"), flags
    finally:
        if folder:  # first: with GIMP gone, the next call to it ends this process
            shutil.rmtree(folder, ignore_errors=True)
        if progress:  # also when the render failed: GIMP's progress bar must not stay up
            Gimp.progress_end()


def load_thumbnail(procedure, file, size, config, data):
    """Thumbnail procedure: the raw's embedded preview, with the full image's size."""
    folder = None
    die_with_gimp()
    try:
        if file.get_path() is None:
            raise PluginError("hostplug: can only show previews of local files")
        folder = temporary_folder("hostplug-gimp-thumb-")
        jpeg, width, height = write_thumbnail(file.get_path(), folder, size)
        image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(jpeg))
        return Gimp.ValueArray.new_from_values([
            GObject.Value(Gimp.PDBStatusType, Gimp.PDBStatusType.SUCCESS),
            GObject.Value(Gimp.Image, image),
            GObject.Value(GObject.TYPE_INT, width),
            GObject.Value(GObject.TYPE_INT, height),
            GObject.Value(Gimp.ImageType, Gimp.ImageType.RGB_IMAGE),
            GObject.Value(GObject.TYPE_INT, 1),
        ])
    except PluginError as e:
        return failure(procedure, str(e))
    except Exception as e:  # noqa: BLE001 - a missing preview is not worth a crash
        return failure(procedure, f"hostplug: unexpected error while reading the raw's preview: {e!r}")
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def show_recipe_in_config(config, recipe, white):
    """Put the image's current recipe into the dialog's fields; the temperature and tint fields show what the
    white balance came to (``white``), so that choosing "Temperature and tint" starts from the picture as it is (a
    tester's started at 5500 K, whatever the raw's as-shot white)."""
    if isinstance(recipe.get("style"), str):
        config.set_property("style", recipe["style"])
    wb = recipe.get("wb", "as-shot")
    config.set_property("white-balance", wb if wb in dict(WB_CHOICES) else "as-shot")
    for name, _label, low, high, _default in ADJUSTMENTS:
        value = recipe.get(name)
        if isinstance(value, (int, float)):
            config.set_property(name, min(max(float(value), low), high))
    for name, _label, low, high, _default in WB_ADJUSTMENTS:
        value = recipe.get(name) if wb == "custom" else white.get(name)
        if isinstance(value, (int, float)):
            config.set_property(name, min(max(float(value), low), high))


def show_white_in_config(config, white):
    """Under "As shot" or "Automatic", the greyed temperature and tint fields show what that white balance came to
    (``white``, from the preview): they kept a custom white's values after a switch to "As shot" (a tester's). Only
    a value that differs is set, so the preview this asks for again is the last."""
    if not isinstance(white, dict) or config.get_property("white-balance") == "custom":
        return
    for name, _label, low, high, _default in WB_ADJUSTMENTS:
        value = white.get(name)
        if isinstance(value, (int, float)) and abs(config.get_property(name) - min(max(value, low), high)) > 1e-6:
            config.set_property(name, min(max(float(value), low), high))


def recipe_from_config(config, recipe, only_set=False, white=None):
    """``recipe`` with the dialog's settings applied, or, ``only_set``, those a script's call set: a value other
    than the argument's default (a script that wants a default turns ``keep-stored`` off and gives every
    argument). A temperature or tint set is a custom white balance, as ``--temperature`` is; the one of the two not
    set comes from the stored custom white, else from the white the render came to (``white``), else it is an
    error, as ``--tint`` alone is."""
    def given(name, default):
        value = config.get_property(name)
        return None if only_set and value == default else value

    changed = dict(recipe)
    style = (given("style", DEFAULT_STYLE) or "").strip()
    if style:
        changed["style"] = style
    for name, _label, _low, _high, default in ADJUSTMENTS:
        value = given(name, default)
        if value is not None:
            changed[name] = float(value)
    asked = {name: given(name, default) for name, _label, _low, _high, default in WB_ADJUSTMENTS}
    wb = given("white-balance", DEFAULT_WB)
    if wb is None and any(value is not None for value in asked.values()):
        wb = "custom"
    if wb is None:
        return changed
    stored = recipe if recipe.get("wb") == "custom" else (white or {})
    for name, value in asked.items():
        if wb != "custom":
            changed[name] = None
        elif value is not None:
            changed[name] = float(value)
        elif isinstance(stored.get(name), (int, float)):
            changed[name] = float(stored[name])
        else:
            raise PluginError(f"hostplug: a custom white balance needs a {name} too (this image's recipe holds "
                              "none to keep); set both temperature and tint")
    changed["wb"] = wb
    return changed


class LivePreview:
    """The dialog's preview box. A helper process (``python -m hostplug.service.preview_pipe``) asks the render
    service for a preview of the raw; a worker thread sends it the latest settings, one request at a time (settings
    that changed meanwhile replace the waiting ones), and the GTK main loop shows each answer scaled to the box."""

    def __init__(self, raw_path, dialog, box, label, config=None):
        self.raw_path, self.dialog, self.box, self.label, self.config = raw_path, dialog, box, label, config
        self.condition = threading.Condition()
        self.wanted = None  # the latest settings not yet sent
        self.closed = False
        self.timer = None
        self.shown = 0
        python = plugin_config().get("python") or sys.executable
        self.said = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(); the helper's stderr
        self.process = subprocess.Popen([python, "-m", "hostplug.service.preview_pipe"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.said, env=child_environment())
        threading.Thread(target=self._work, name="hostplug-preview", daemon=True).start()

    def request(self, recipe):
        """Ask for a preview of ``recipe`` once the settings have been still for DEBOUNCE_MS (main thread)."""
        if self.timer is not None:
            GLib.source_remove(self.timer)
        self.timer = GLib.timeout_add(DEBOUNCE_MS, self._hand_over, recipe)

    def _hand_over(self, recipe):
        self.timer = None
        with self.condition:
            self.wanted = recipe
            self.condition.notify()
        return False

    def _work(self):
        while True:
            with self.condition:
                while self.wanted is None and not self.closed:
                    self.condition.wait()
                if self.closed:
                    return
                recipe, self.wanted = self.wanted, None
            sent = time.monotonic()
            try:
                line = json.dumps({"input": self.raw_path, "recipe": recipe, "long_edge": PREVIEW_LONG_EDGE})
                self.process.stdin.write(line.encode("utf-8") + b"\n")
                self.process.stdin.flush()
                answer = self.process.stdout.readline()
                if not answer:  # it stopped after taking the request: its stderr says why
                    raise EOFError("no answer")
                header = json.loads(answer)
                pixels = self.process.stdout.read(int(header.get("bytes") or 0)) if header.get("ok") else b""
            except (OSError, ValueError, EOFError) as e:
                GLib.idle_add(self.label.set_text, self._stopped_text(e))
                return
            header["round_trip"] = time.monotonic() - sent
            GLib.idle_add(self._show, header, pixels, recipe)

    def _stopped_text(self, error):
        """What the dialog says when the helper stopped: its last line (a tester saw "Broken pipe" where the helper
        could not import hostplug), and that OK still renders."""
        try:
            self.said.seek(0)
            lines = [line for line in self.said.read().decode(errors="replace").splitlines() if line.strip()]
        except (OSError, ValueError):  # ValueError: closed with the dialog meanwhile
            lines = []
        why = lines[-1].strip() if lines else str(error)
        return (f"No preview: the preview helper stopped ({why[:200]}); OK still renders, or says what is wrong; "
                "reinstalling hostplug ('hostplug integrate gimp') mends a broken install")

    def _show(self, header, pixels, recipe):
        if self.closed:
            return False
        if not header.get("ok"):
            self.label.set_text(preview_error_text(header.get("error")))
            return False
        width, height = int(header["width"]), int(header["height"])
        pixbuf = GdkPixbuf.Pixbuf.new_from_bytes(GLib.Bytes.new(pixels), GdkPixbuf.Colorspace.RGB, False, 8,
                                                 width, height, width * 3)
        scale = min(PREVIEW_BOX[0] / width, PREVIEW_BOX[1] / height)
        shown = pixbuf.scale_simple(max(1, round(width * scale)), max(1, round(height * scale)),
                                    GdkPixbuf.InterpType.BILINEAR)
        self.box.set_from_pixbuf(shown)
        self.label.set_text(f"Preview {width} x {height} in {header['round_trip']:.2f} s "
                            f"(re-ran {', '.join(header.get('ran') or ['nothing'])})")
        if self.config is not None:
            show_white_in_config(self.config, header.get("white_balance"))
        self.shown += 1
        if os.environ.get(ENV_DIALOG_TEST):
            GLib.idle_add(self._note_for_tests, header, recipe, shown.get_width(), shown.get_height())
        return False

    def _note_for_tests(self, header, recipe, width, height):
        """Where the preview is on the screen and what it shows, for tests/test_gimp_dialog.py; and the keyboard
        focus on the exposure control, which the test then changes with real key presses."""
        if self.shown == 1:
            widget = self.dialog.get_widget("exposure", GObject.TYPE_NONE)
            spin = widget.get_spin_button() if hasattr(widget, "get_spin_button") else widget
            self.dialog.present()
            spin.grab_focus()
        allocation = self.box.get_allocation()
        _ok, x, y = self.box.get_window().get_origin()
        white_field = self.dialog.get_widget("temperature", GObject.TYPE_NONE)
        note = {"n": self.shown, "exposure": recipe.get("exposure"), "seconds": header.get("seconds"),
                "round_trip": header["round_trip"],
                "ran": header.get("ran"), "temperature_editable": bool(white_field.is_sensitive()),
                "preview": [x + allocation.x + (allocation.width - width) // 2,
                            y + allocation.y + (allocation.height - height) // 2, width, height]}
        path = os.path.join(os.environ[ENV_DIALOG_TEST], f"preview-{self.shown}.json")
        with open(path + ".part", "w", encoding="utf-8") as f:
            json.dump(note, f)
        os.replace(path + ".part", path)
        return False

    def close(self):
        """Stop the worker and the helper process."""
        with self.condition:
            self.closed = True
            self.condition.notify()
        if self.timer is not None:
            GLib.source_remove(self.timer)
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
        self.said.close()


def only_when_custom(dialog):
    """Grey out the temperature and tint fields unless white balance is "Temperature and tint" (a tester typed
    2500 K under "As shot", which the render rightly ignored, without a sign that it would)."""
    custom = Gimp.ValueArray.new_from_values([GObject.Value(GObject.TYPE_STRING, "custom")])
    for name, *_rest in WB_ADJUSTMENTS:
        dialog.set_sensitive_if_in(name, None, "white-balance", custom, True)


def preview_error_text(error):
    """What the dialog says when the service gave no preview (``error``, which may say "no preview: ..." itself);
    a service that hangs is named, and that OK still renders (without it)."""
    text = str(error or "the preview helper stopped")
    if not text.lower().startswith("no preview"):
        text = f"no preview: {text}"
    hint = "; OK still renders ('hostplug serve --stop' ends a service that hangs)" if "did not answer" in text else ""
    return text[:1].upper() + text[1:] + hint


def preview_label():
    """The line under the preview, of a fixed size: a tester's dialog grew wider as its text grew longer (the
    stages a preview re-ran), moving every control. Longer text wraps, within room for two lines."""
    label = Gtk.Label(label="Rendering a preview...")
    label.set_line_wrap(True)
    label.set_width_chars(PREVIEW_LABEL[0])
    label.set_max_width_chars(PREVIEW_LABEL[0])
    _width, line_height = label.create_pango_layout("Ag").get_pixel_size()
    label.set_size_request(-1, PREVIEW_LABEL[1] * line_height)
    return label


def run_dialog(procedure, config, raw_path, recipe):
    """Show the re-render dialog with a live preview of ``raw_path``; False when the user cancels."""
    GimpUi.init(RERENDER_PROC)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Re-render with hostplug")
    dialog.fill(["style", "white-balance", *(name for name, *_rest in WB_ADJUSTMENTS),
                 *(name for name, *_rest in ADJUSTMENTS)])  # keep-stored is for scripts
    only_when_custom(dialog)
    box = Gtk.Image()
    box.set_size_request(*PREVIEW_BOX)
    label = preview_label()
    content = dialog.get_content_area()
    content.pack_start(box, False, False, 6)
    content.reorder_child(box, 0)
    content.pack_start(label, False, False, 0)
    content.reorder_child(label, 1)
    box.show()
    label.show()
    preview = None
    try:
        preview = LivePreview(raw_path, dialog, box, label, config)
    except (OSError, PluginError) as e:  # no helper: the dialog still works, without a preview
        label.set_text(f"No preview: {e}")
    handler = None
    if preview is not None:
        handler = config.connect("notify", lambda *_args: preview.request(recipe_from_config(config, recipe)))
        preview.request(recipe_from_config(config, recipe))
    try:
        return dialog.run()
    finally:
        if handler is not None:
            config.disconnect(handler)
        if preview is not None:
            preview.close()
        dialog.destroy()


def image_size(image):
    """(width, height) of ``image``'s canvas."""
    return image.get_width(), image.get_height()


def layer_name(result, asked):
    """A re-render's layer name: the style of the recipe the render used (hostplug's ``result``), as hostplug
    spells it (a tester's style "Warm" named the layer "hostplug: Warm" while the recipe said "warm"); the recipe
    ``asked`` for where an older hostplug reports none."""
    used = result.get("recipe") if isinstance(result.get("recipe"), dict) else {}
    style = used.get("style") or asked.get("style") or DEFAULT_STYLE
    return f"hostplug: {style}"


def rerender(procedure, run_mode, image, drawables, config, data):
    """Image procedure: render the image's raw again with changed settings, as a new layer on top."""
    folder = None
    progress = False
    die_with_gimp()
    try:
        raw_path, recipe, sha256, white, size = read_recipe(image)
        check_same_size(image_size(image), size)  # before the dialog: nothing typed in vain
        check_same_way_round(stored_print(image), picture_print(image))
        if not os.path.isfile(raw_path):
            return failure(procedure, f"hostplug: error: the raw {raw_path} is not there any more; put it back, "
                                      "or open the raw from where it is now")
        check_same_raw(raw_path, sha256)
        interactive = run_mode == Gimp.RunMode.INTERACTIVE
        if interactive:
            show_recipe_in_config(config, recipe, white)
        # a script's call changes what it sets; the rest stays as stored (a tester's exposure-only call was
        # rendered natural, as shot, the image's style and white balance dropped)
        # ("repeat last" gives the last dialog's values, each one chosen: taken as given)
        only_set = run_mode == Gimp.RunMode.NONINTERACTIVE and bool(config.get_property("keep-stored"))
        while True:
            if interactive and not run_dialog(procedure, config, raw_path, recipe):
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
            folder = folder or temporary_folder("hostplug-gimp-")
            if not progress:
                Gimp.progress_init(f"Re-rendering {os.path.basename(raw_path)} with hostplug")
                progress = True
            try:
                changed = recipe_from_config(config, recipe, only_set, white)
                tiff, result, notes = render_raw(raw_path, folder, changed)
                break
            except PluginError as e:
                if not interactive or not e.settings:
                    raise
                # said, and the dialog opens again with what was typed in it (a tester's OK with a mistyped
                # style closed the dialog, and the exposure he had set was gone)
                Gimp.progress_end()
                progress = False
                Gimp.message(error_line(e))
        rendered = result.get("source_sha256")
        check_same_raw(raw_path, sha256, rendered)  # replaced while the dialog was open, or while it rendered
        sha256 = sha256 or rendered  # an image an older plug-in opened is known by its raw from now on
        image.undo_group_start()
        try:
            layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(tiff))
            try:  # an image an older plug-in opened holds no size: its render's says it
                check_same_size(image_size(image), (layer.get_width(), layer.get_height()))
            except PluginError:
                layer.delete()
                raise
            layer.set_name(layer_name(result, changed))
            image.insert_layer(layer, None, 0)
            attach_recipe(image, raw_path, {**result, "recipe": result.get("recipe") or changed}, sha256,
                          (layer.get_width(), layer.get_height()), picture_print(image, layer), undoable=True)
            take_render_record(image, tiff)
        finally:
            image.undo_group_end()
        Gimp.displays_flush()
        tell(notes)
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    except PluginError as e:
        return failure(procedure, str(e))
    except Exception as e:  # noqa: BLE001 - a plug-in error must reach the console, not crash GIMP
        return failure(procedure, f"hostplug: unexpected error while re-rendering: {e!r}")
    finally:
        if folder:  # first: with GIMP gone, the next call to it ends this process
            shutil.rmtree(folder, ignore_errors=True)
        if progress:
            Gimp.progress_end()


# ----- registration --------------------------------------------------------------------------------------


def create_load(plugin, name):
    """The raw load procedure."""
    procedure = Gimp.LoadProcedure.new(plugin, name, Gimp.PDBProcType.PLUGIN, load_raw, None)
    procedure.set_menu_label("Camera raw (hostplug)")
    procedure.set_documentation("Open a camera raw rendered by hostplug",
                                "Renders the raw with hostplug's neural ISP into a 16-bit image, using the "
                                "raw's sidecar recipe when it has one.", name)
    procedure.set_handles_raw(True)
    procedure.set_mime_types(",".join(sorted(set(RAW_FORMATS.values()))))
    procedure.set_extensions(",".join(sorted(RAW_FORMATS)))
    procedure.set_thumbnail_loader(THUMB_PROC)
    return procedure


def create_thumbnail(plugin, name):
    """The thumbnail procedure."""
    procedure = Gimp.ThumbnailProcedure.new(plugin, name, Gimp.PDBProcType.PLUGIN, load_thumbnail, None)
    procedure.set_documentation("Preview of a camera raw", "The raw's embedded preview image.", name)
    return procedure


def create_rerender(plugin, name):
    """The Re-render with hostplug... image procedure and its dialog's arguments."""
    procedure = Gimp.ImageProcedure.new(plugin, name, Gimp.PDBProcType.PLUGIN, rerender, None)
    procedure.set_image_types("*")
    procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE
                                   | Gimp.ProcedureSensitivityMask.DRAWABLES
                                   | Gimp.ProcedureSensitivityMask.NO_DRAWABLES)
    procedure.set_menu_label("Re-render with hostplug...")
    procedure.add_menu_path("<Image>/Image")
    procedure.set_documentation("Render the image's raw again with hostplug",
                                "Renders the camera raw this image was opened from with another style or "
                                "adjustments, and adds the result as a new layer.", name)
    flags = GObject.ParamFlags.READWRITE
    procedure.add_string_argument("style", "St_yle",
                                  "Picture style: a hostplug style, or a blend such as warm:0.7,moody:0.3",
                                  DEFAULT_STYLE, flags)
    wb = Gimp.Choice.new()
    for index, (key, label) in enumerate(WB_CHOICES):
        wb.add(key, index, label, "")
    procedure.add_choice_argument("white-balance", "_White balance", "White balance", wb, DEFAULT_WB, flags)
    blurbs = {"temperature": "White balance temperature in Kelvin",
              "tint": "White balance tint, green (-) to magenta (+)"}
    for key, label, low, high, default in WB_ADJUSTMENTS:
        procedure.add_double_argument(key, label, blurbs[key], low, high, default, flags)
    for key, label, low, high, default in ADJUSTMENTS:
        procedure.add_double_argument(key, label, label.replace("_", ""), low, high, default, flags)
    procedure.add_boolean_argument("keep-stored", "_Keep the stored recipe",
                                   "A script's call: arguments left at their defaults keep the image's recipe "
                                   "(off: every argument is taken as given, defaults too)", True, flags)
    procedure.set_attribution("hostplug", "hostplug", "2025")
    return procedure


class HostplugRaw(Gimp.PlugIn):
    """hostplug's GIMP plug-in: raw loader, thumbnail loader and re-render command."""

    def do_set_i18n(self, procname):
        return False  # English only: no message catalogue to look for

    def do_query_procedures(self):
        return [THUMB_PROC, LOAD_PROC, RERENDER_PROC]

    def do_create_procedure(self, name):
        if name == LOAD_PROC:
            procedure = create_load(self, name)
        elif name == THUMB_PROC:
            procedure = create_thumbnail(self, name)
        else:
            procedure = create_rerender(self, name)
        if name != RERENDER_PROC:
            procedure.set_attribution("hostplug", "hostplug", "2025")
        return procedure


if __name__ == "__main__":
    Gimp.main(HostplugRaw.__gtype__, sys.argv)
