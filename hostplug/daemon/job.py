"""What a worker does with one raw: pick its recipe, skip it if its outputs are current, render, write outputs.

The outcome is a :class:`Outcome` whose ``kind`` tells the daemon what to do next:

``done``       every output written (atomically, replacing any earlier render of the same raw); ``message`` names
               earlier outputs it kept because the new recipe names the outputs otherwise
``unchanged``  content and recipe are those of the last render and its outputs exist: nothing rendered
``changed``    the file changed while it was being opened: it is still being written, settle it again
``gone``       the file disappeared before it was rendered
``failed``     the file can never render as it is (unsupported, corrupt, a bad sidecar): no retry
               (``outputs_at_fault``: the raw is fine, but its outputs cannot be written as named: another raw's
               name, a file left alone there, a name too long)
``retry``      a temporary cause (output folder, memory, a model missing, an unexpected error): retried a bounded
               number of times
``disk_full``  an output's disk is full: the raw waits in the queue, without using up its attempts, until there
               is room
``no_output``  an output folder is not there to write in (a file in its place, or gone with its parent) or refuses
               writes (its permissions, a read-only share): no fault of the raw, which waits in the queue as for a
               full disk
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import (
    CorruptInputError,
    HostplugError,
    InputNotFoundError,
    ModelError,
    OutputError,
    UnsupportedInputError,
)
from engine.output.publish import FULL_DISK_BYTES
from engine.recipe import Recipe
from hostplug.daemon.config import FolderConfig, OutputSpec
from hostplug.daemon.journal import Conflict, Journal, disk_full
from hostplug.daemon.originals import archive_folder
from hostplug.daemon.recipes import recipe_for_file, recipe_hash
from hostplug.daemon.templates import TokenValues, output_path, safe_part
from hostplug.stamps import newer_second, untouched

if TYPE_CHECKING:
    from engine.output.formats import OutputOptions
    from engine.xmp.sidecar import SidecarRender

PERMANENT_KINDS = ("failed", "gone")
# Larger than a raw of the engine's largest picture (200 MP) can be, even as three float32 channels (2.4 GB): such a
# file is not hashed by the daemon's loop (a tester's 20 GB file held up every other file for 45 s), only refused.
MAX_RAW_BYTES = 4 * 2**30


@dataclass(frozen=True)
class Job:
    """One raw to render, as the daemon hands it to a worker."""

    id: int
    path: Path
    folder: Path
    size: int
    mtime_ns: int
    content_hash: str
    previous_content_hash: str | None = None  # of the last successful render
    previous_recipe_hash: str | None = None
    previous_outputs: tuple[str, ...] = ()
    fresh_names: bool = False  # a new photo under the name of an earlier one: never take that one's outputs
    taken_names: tuple[str, ...] = ()  # raws known before this one whose names its numbering leaves to them
    retry: str = "hostplug queue --retry"  # the command that queues it again (the daemon's names its journal)


@dataclass(frozen=True)
class Outcome:
    """What became of a job."""

    job_id: int
    kind: str
    message: str = ""
    recipe_hash: str | None = None
    outputs: tuple[str, ...] = ()
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notice: str = ""  # what the render did not do that the raw's sidecar asks (another program's crop)
    place: str = ""  # the output folder a ``no_output`` outcome waits for
    remade: tuple[str, ...] = ()  # output folders that were gone and were made again for this render
    outputs_at_fault: bool = False  # a ``failed`` raw is fine; its outputs cannot be written as named


def token_values(job: Job, folder: FolderConfig, recipe: Recipe, source: object,
                 catalogue: dict[str, Any] | None = None) -> TokenValues:
    """What a template's tokens stand for, for this raw (``catalogue``: the output XMP its sidecar gives, whose
    corrected capture time dates it before the camera's: its outputs carry that one)."""
    from engine.xmp.capture_time import taken_at

    camera = getattr(source, "camera", None)
    taken = (taken_at(catalogue or {}) or getattr(camera, "timestamp", None)
             or _dt.datetime.fromtimestamp(job.mtime_ns / 1e9))
    model = " ".join(p for p in (getattr(camera, "make", ""), getattr(camera, "model", "")) if p)
    relative = job.path.parent.relative_to(folder.path)
    return TokenValues(name=job.path.stem, ext=job.path.suffix.lstrip("."), dir=relative.as_posix(),
                       date=taken.strftime("%Y-%m-%d"), camera=model or "unknown", style=recipe.style, seq=job.id)


def output_target(spec: OutputSpec, values: TokenValues, original: Path | None) -> Path:
    """Where one output goes: in its folder, or beside the original named after it (``{name}`` is the original's
    name and ``{dir}`` is empty there)."""
    if not spec.beside_original:
        assert spec.folder is not None
        return output_path(spec.folder, spec.template, values, spec.suffix)
    assert original is not None
    # the original's own name, spaces and brackets included: "IMG 0002.tif" groups with "IMG 0002.dng" in darktable
    return output_path(original.parent, spec.template,
                       dataclasses.replace(values, name=original.stem, dir="", exact_name=True), spec.suffix)


def output_options(spec: OutputSpec) -> OutputOptions:
    """The engine's options for one output (always replacing: the name is this raw's own)."""
    from engine.output.formats import OutputOptions

    return OutputOptions(format=spec.format, bits=spec.bits, quality=spec.quality, space=spec.space,
                         long_edge=spec.long_edge, compression=spec.compression, overwrite=True)


def _stamped(spec: OutputSpec, target: str) -> OutputOptions:
    """An output's options: it records when it was written (and takes that time), so that a retouch saved over
    it (a master TIFF finished in an editor) is never rendered over."""
    return dataclasses.replace(output_options(spec), modified=newer_second(Path(target)))


def overlong_part(targets: list[str]) -> str | None:
    """A file or folder name in ``targets`` longer than the 255 bytes a file system allows (counted in bytes:
    a name in Japanese takes three a character), or None."""
    return next((part for target in targets for part in Path(target).parts if len(os.fsencode(part)) > 255), None)


def _refusal(job: Job, targets: list[str]) -> str | None:
    """Why these output names cannot be written (too long, twice the same), or None. Each comes from the file's
    own name or the configuration: a retry cannot help."""
    too_long = overlong_part(targets)
    if too_long is not None:
        return (f"output name {too_long[:40]}... is {len(os.fsencode(too_long))} bytes, more than the 255 a file "
                "name may have; rename the file or shorten the template")
    if len(set(targets)) < len(targets):
        return f"two outputs of this hot folder would both be {targets}"
    return None


MAX_NAME_NUMBER = 99  # NAME-2 ... NAME-99 for new photos under a name used before


def claim_outputs(job: Job, folder: FolderConfig, values: TokenValues, original: Path | None,
                  journal: Journal) -> tuple[list[str], str | None]:
    """Reserve the raw's output paths in the journal; returns them, and why they cannot be used (or None).

    A new photo under the name of an earlier, archived one (``job.fresh_names``: cameras start again at
    IMG_0001) takes the first of ``NAME``, ``NAME-2``, ``NAME-3``... that no other raw's outputs hold and that is
    not the name of a raw known before it (``job.taken_names``), so the earlier photo's outputs are never
    replaced. A raw whose own names such a numbered photo holds (it is called ``NAME-2`` itself: the claim's
    :attr:`.Conflict.renamed`) is numbered the same way, from its own name, as long as each name it meets is held
    by such a numbering. The same numbers come back at every retry. Any other raw whose names are taken (one of
    the same output name: ``IMG 0001.dng`` and ``IMG_0001.dng``, or one in a sub-folder) fails, asking for
    ``{dir}`` or ``{seq}``.
    """
    targets: list[str] = []
    conflict: Conflict | None = None
    for number in range(1, MAX_NAME_NUMBER + 1):
        named = values if number == 1 else dataclasses.replace(values, name=f"{values.name}-{number}")
        candidate = [str(output_target(s, named, original)) for s in folder.outputs]
        if candidate == targets:  # the templates leave {name} out: numbering cannot help
            break
        targets = candidate
        refusal = _refusal(job, targets)
        if refusal is not None:
            return targets, refusal
        if number > 1 and _left_to_another(named.name, job.taken_names):
            continue
        conflict = journal.claim(job.id, targets)
        if conflict is None:  # the names are this raw's in the journal: still, files there may not be its renders
            return targets, _left_alone(job, targets)
        if not (job.fresh_names or conflict.renamed):  # a raw numbered in turn stops at a plain conflict
            break
    return targets, f"output {conflict.message if conflict else targets[0]}; {_clash_advice(job, conflict)}"


def _clash_advice(job: Job, conflict: Conflict | None) -> str:
    """What tells two raws' outputs apart: {dir} only helps raws in different folders (it said so to two raws of
    one folder, ``IMG 0005.dng`` and ``IMG_0005.dng``, whose names the template makes the same)."""
    if conflict is not None and conflict.owner is not None and conflict.owner.parent == job.path.parent:
        return f"put {{seq}} in the template, or rename one of the two raws, then {job.retry}"
    return f"put {{dir}} or {{seq}} in the template, then {job.retry}"


def _left_alone(job: Job, targets: list[str]) -> str | None:
    """Why a file at one of the raw's own output names must stay (or None): it is no render of this raw (the
    photographer's own file, another daemon's render in a shared folder), or a render retouched since.

    A render is this raw's when it records the raw's content hash, or that of its last render (its content
    changed since: a DNG converted again). A hash, unlike a path, is the same on every node of a cluster and tells
    two photos of one name apart. Each file's record is read once for both questions."""
    from engine.xmp.provenance import read_provenance

    ours = {h for h in (job.content_hash, job.previous_content_hash) if h}
    for target in map(Path, targets):
        if not target.exists():
            continue
        recorded = read_provenance(target)
        # its own output, saved by an editor that dropped hostplug's record: a retouch, not a stranger's file
        record_lost = recorded.sha256 is None and str(target) in job.previous_outputs and not recorded.darktable_export
        if recorded.sha256 not in ours and not record_lost:
            return (f"{target} exists and is not a hostplug render of this raw; it is left alone: rename or move it "
                    f"(or change the template), then {job.retry}")
        if record_lost or not untouched(target, recorded.written):
            return (f"{target} was changed since hostplug rendered it (a retouch saved over it?); it is left alone: "
                    f"rename or move it, then {job.retry}")
    return None


def _left_to_another(name: str, taken: tuple[str, ...]) -> bool:
    """Whether a numbered name is that of a raw known before (compared as output names: made safe alike)."""
    return safe_part(name) in {safe_part(t) for t in taken}


def _stat_changed(job: Job) -> bool:
    try:
        st = job.path.stat()
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (job.size, job.mtime_ns)


def _changed_or_gone(job: Job, message: str) -> Outcome:
    """A raw that is no longer as it settled: ``changed`` (to settle again), or ``gone`` when it was deleted or
    renamed (it was logged as still changing first, then as gone)."""
    if not job.path.exists():
        return Outcome(job.id, "gone", f"{job.path} went away while it was rendered")
    return Outcome(job.id, "changed", message)


class _ReplacedError(Exception):
    """The raw changed (or was replaced) while it rendered."""


class _LeftAloneError(Exception):
    """A file at an output's name became one to leave alone while the raw rendered."""


def _still_ours(job: Job) -> Callable[[list[Path]], None]:
    """The check made again just before the outputs take their names: a render takes seconds, in which an
    editor may save a retouch over the last render, or a file may be put at an output's name."""
    def check(targets: list[Path]) -> None:
        reason = _left_alone(job, [str(t) for t in targets])
        if reason is not None:
            raise _LeftAloneError(reason)
    return check


def _stop_if_replaced(job: Job) -> Callable[[str, int, int], None]:
    """A render's progress callback that stops it, at its next stage, when the raw is no longer the one the job
    opened: replaced mid-render, its outputs would show the old picture until the new one rendered."""
    def check(_stage: str, _index: int, _count: int) -> None:
        if _stat_changed(job):
            raise _ReplacedError
    return check


def _current(job: Job, digest: str) -> bool:
    """Whether the last render used this very content and recipe and all its outputs are still there and not
    replaced by another program's file: one that records another raw, or a darktable export (a tester's darktable
    TIFF made the raw "identical to its last render", and nobody was told; it is rendered now, and the file at its
    name left alone with a line saying why, :func:`_left_alone`). A retouch of an output, with or without our
    record (an editor that drops the XMP), still counts as the render: nothing to render again."""
    from engine.xmp.provenance import read_provenance

    def replaced(output: str) -> bool:
        recorded = read_provenance(Path(output))
        return recorded.darktable_export or recorded.sha256 not in (None, job.content_hash)

    return (job.previous_content_hash == job.content_hash and job.previous_recipe_hash == digest
            and bool(job.previous_outputs) and all(os.path.exists(p) for p in job.previous_outputs)
            and not any(replaced(p) for p in job.previous_outputs))


def _edited_copy(job: Job, folder: FolderConfig) -> Path:
    """The raw whose sidecars hold the photographer's edits for ``job``: its own, or, when it comes without any,
    the same bytes archived under its name with theirs. A card copied in again without its sidecars rendered the
    photo again without its rating, labels, keywords and look, over the outputs that had them."""
    from engine.filehash import file_sha256
    from engine.xmp.sidecar_files import find_sidecars

    if folder.archive is None or find_sidecars(job.path):
        return job.path
    archived = folder.archive / job.path.relative_to(folder.path)
    try:
        same = archived.is_file() and archived.stat().st_size == job.size and file_sha256(archived) == job.content_hash
    except OSError:
        return job.path
    return archived if same and find_sidecars(archived) else job.path


def _archive_note(raw: Path, folder: FolderConfig, original: Path | None) -> dict[str, str]:
    """The outputs' record of where the raw goes once rendered (its archive folder), so that ``hostplug
    rerender`` finds it there without --search (a tester's every daemon output lost its way back at the move)."""
    if original is not None or folder.originals != "move" or folder.archive is None:
        return {}
    from engine.xmp.provenance import ARCHIVE_KEY

    return {ARCHIVE_KEY: str(archive_folder(raw, folder).resolve())}


class _NoOutputFolderError(Exception):
    """An output folder is not there to write in; ``args``: the folder, and one line saying why."""


def _device(path: Path) -> int | None:
    """The device ``path`` lies on, or None when it is not there."""
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def output_devices(folders: Iterable[FolderConfig]) -> dict[Path, int]:
    """The device of each output folder (of its nearest existing parent, when it is missing), recorded when the
    workers start: a share unmounted later leaves its mount point an empty folder of another device, where the
    output folder must not be made again (:func:`_ready_output_folders`)."""
    devices: dict[Path, int] = {}
    for spec in (s for f in folders for s in f.outputs if s.folder is not None):
        assert spec.folder is not None
        device = next((d for d in map(_device, (spec.folder, *spec.folder.parents)) if d is not None), None)
        if device is not None:
            devices[spec.folder] = device
    return devices


def _check_output_folder(out: Path, devices: Mapping[Path, int]) -> None:
    """_NoOutputFolderError unless ``out`` is a folder on the device it was on at start (a share's mount point,
    unmounted, is an empty folder of the local disk)."""
    if not out.is_dir():
        reason = "is not a folder" if os.path.lexists(out) else "is gone"
        raise _NoOutputFolderError(out, f"output folder {out} {reason}")
    if out in devices and _device(out) != devices[out]:
        raise _NoOutputFolderError(out, f"output folder {out} is on another device than when the daemon started "
                                        "(a share not mounted?); nothing is written there")


def _ready_output_folders(folder: FolderConfig, devices: Mapping[Path, int]) -> tuple[str, ...]:
    """Make sure each output folder is a folder on its device at start (``devices``: :func:`output_devices`);
    returns those made again. The start-up checks make each one, so one that is gone was moved or removed: it is
    made again (the daemon warns) when its parent is there on that device, never its parents. An unmounted share
    leaves its mount point, an empty folder on another device: nothing is made there. _NoOutputFolderError when
    one is a file, on another device, or cannot be made: the raw is not at fault and waits."""
    remade = []
    for out in (spec.folder for spec in folder.outputs if spec.folder is not None):
        if out.is_dir() or os.path.lexists(out):
            _check_output_folder(out, devices)
            continue
        if out in devices and _device(out.parent) not in (None, devices[out]):
            raise _NoOutputFolderError(out, f"output folder {out} is gone, and {out.parent} is on another device "
                                            "than when the daemon started (a share not mounted?); it is not made "
                                            "there")
        try:
            out.mkdir()
        except FileExistsError:  # made by another worker just now, or a file put there
            _check_output_folder(out, devices)
            continue
        except FileNotFoundError:
            raise _NoOutputFolderError(out, f"output folder {out} is gone, and so is {out.parent} (a share not "
                                            "mounted?); it is not made there") from None
        except OSError as e:
            raise _NoOutputFolderError(out, f"output folder {out} is gone and cannot be made again "
                                            f"({e.strerror or e})") from None
        remade.append(str(out))
    return tuple(remade)


def _refused_folder(error: BaseException, folder: FolderConfig) -> tuple[Path, str] | None:
    """The output folder that refused a write (its permissions, a read-only or immutable share) and what to say
    of it, or None for any other error. A tester's NAS permission change failed each raw after three retries in
    15 s: like a folder that is gone (``no_output``), it is no fault of the raw, which waits."""
    cause = error if isinstance(error, OSError) else error.__cause__
    if not isinstance(cause, OSError) or cause.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
        return None
    named = Path(cause.filename) if isinstance(cause.filename, str) else None
    outs = [spec.folder for spec in folder.outputs if spec.folder is not None]
    place = next((out for out in outs if named is not None and (named.is_relative_to(out)
                                                                 or named.is_relative_to(out.resolve()))), None)
    if place is None or named is None or _can_write_in(named.parent):
        return None  # beside the original; or one file refused (an immutable output replaced): retried, counted
    return place, f"output folder {place} cannot be written ({cause.strerror or cause})"


def _can_write_in(folder: Path) -> bool:
    """Whether a new file can be made (and removed) in ``folder``: a reviewer's one immutable output in a folder
    that takes new files made its raw wait for ever, as if the folder refused every write."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hostplug-probe-"):
            return True
    except OSError:
        return False


def _make_subfolders(folder: FolderConfig, targets: list[str], devices: Mapping[Path, int]) -> None:
    """Make the folders a template puts outputs in (``{date}/``, ``{dir}/``), only below an output folder that
    is there on its device at start: seconds after :func:`_ready_output_folders`, a share may be gone, and the
    output folder must not be made with them on the local disk."""
    for spec, target in zip(folder.outputs, map(Path, targets), strict=True):
        if spec.folder is None:  # beside the original, in its own folder
            continue
        _check_output_folder(spec.folder, devices)
        current = spec.folder.resolve()  # as output_path resolves the targets (a folder reached by a link)
        for part in target.parent.relative_to(current).parts:
            current = current / part
            current.mkdir(exist_ok=True)


def run_job(job: Job, folder: FolderConfig, base: Recipe, journal: Journal, *, device: str = "cpu",
            announce: Callable[[list[str]], None] = lambda targets: None,
            devices: Mapping[Path, int] | None = None) -> Outcome:
    """Render one raw into every output of its hot folder. Never raises for a problem with the file.
    ``devices``: the output folders' devices at start (:func:`output_devices`), recorded now when not given."""
    if not job.path.is_file():
        return Outcome(job.id, "gone", f"{job.path} disappeared before it was rendered")
    if _stat_changed(job):
        return Outcome(job.id, "changed", "the file changed after it settled")
    if job.size == 0:
        return Outcome(job.id, "failed", "empty file (0 bytes): nothing to render")
    if job.size > MAX_RAW_BYTES:
        return Outcome(job.id, "failed", f"{job.size / 2**30:.1f} GiB is larger than any raw hostplug renders (at "
                                         f"most {MAX_RAW_BYTES // 2**30} GiB): not a photograph")
    real = Path(os.path.realpath(job.path))
    if not real.is_relative_to(folder.path.resolve()):  # replaced by a link after the scanner looked
        return Outcome(job.id, "failed", f"a link to {real}, outside the hot folder: not rendered")
    original = None
    if any(spec.beside_original for spec in folder.outputs):  # the file is a copy: find what it is a copy of
        from hostplug.daemon.beside import find_original

        try:
            original = find_original(job.path, folder, job.content_hash)
        except InputNotFoundError as e:
            return Outcome(job.id, "failed", str(e))
    try:
        read = recipe_for_file(_edited_copy(job, folder), base)
    except HostplugError as e:
        return Outcome(job.id, "failed", f"sidecar: {e}")
    digest = recipe_hash(read.recipe, folder, read.catalogue, read.orientation)
    if _current(job, digest):
        return Outcome(job.id, "unchanged", "same content and recipe as its last render", digest,
                       job.previous_outputs, notice=read.notice or "")  # a crop set since changes no recipe
    devices = output_devices([folder]) if devices is None else devices
    try:
        remade = _ready_output_folders(folder, devices)
    except _NoOutputFolderError as e:
        return Outcome(job.id, "no_output", e.args[1], place=str(e.args[0]))
    outcome = _render(job, folder, journal, read, digest, (real, original), device, announce, devices)
    return dataclasses.replace(outcome, remade=remade) if remade else outcome


def _render(job: Job, folder: FolderConfig, journal: Journal, read: SidecarRender, digest: str,
            sources: tuple[Path, Path | None], device: str, announce: Callable[[list[str]], None],
            devices: Mapping[Path, int]) -> Outcome:
    """The render itself, once the recipe is read and the output folders are there (:func:`run_job`).
    ``sources``: the raw's real path, as :func:`run_job` checked it, and the original it is a copy of (or None)."""
    import engine
    from engine.orientation import applied
    from engine.output.export import render_files

    recipe, catalogue, turned = read.recipe, read.catalogue, read.orientation
    real, original = sources
    try:
        # the same bytes; outputs then record the original. The raw itself is opened as the file checked above
        # lies: a link swapped in since is refused, not followed
        source = engine.open(original) if original else engine.open(real, follow_links=False)
    except (CorruptInputError, UnsupportedInputError) as e:
        if _stat_changed(job):
            return _changed_or_gone(job, "the file changed while it was being read")
        return Outcome(job.id, "failed", str(e))
    except InputNotFoundError as e:
        return Outcome(job.id, "gone", str(e))
    values = token_values(job, folder, recipe, source, catalogue)
    targets, refusal = claim_outputs(job, folder, values, original, journal)
    if refusal is not None:
        return Outcome(job.id, "failed", refusal, outputs_at_fault=True)
    announce(targets)
    try:
        _make_subfolders(folder, targets, devices)
        full = next((t for t in targets if shutil.disk_usage(Path(t).parent).free < FULL_DISK_BYTES), None)
        if full is not None:  # no output fits: wait without spending a render on it
            return Outcome(job.id, "disk_full", f"cannot write {full}: {os.strerror(errno.ENOSPC)}")
        # the orientation read with the recipe, so that the render is the one the hash describes
        result = render_files(source, [(t, _stamped(s, t)) for s, t in zip(folder.outputs, targets, strict=True)],
                              recipe, extra_xmp={**catalogue, **_archive_note(job.path, folder, original)},
                              device=device,
                              orientation=applied(source.orientation, turned), progress=_stop_if_replaced(job),
                              before_naming=_still_ours(job))
    except _NoOutputFolderError as e:
        return Outcome(job.id, "no_output", e.args[1], place=str(e.args[0]))
    except _LeftAloneError as e:
        return Outcome(job.id, "failed", str(e), outputs_at_fault=True)
    except _ReplacedError:  # its outputs would be the old picture's, published until the new one renders
        return _changed_or_gone(job, "the file changed while it was rendered")
    except (OutputError, OSError, ModelError) as e:  # the machine or installation, not the file (a MemoryError
        # goes to the worker, which knows the memory limit it ran under)
        if disk_full(e) or (e.__cause__ is not None and disk_full(e.__cause__)):
            return Outcome(job.id, "disk_full", str(e))
        refused = _refused_folder(e, folder)
        if refused is not None:
            return Outcome(job.id, "no_output", refused[1], place=str(refused[0]))
        return Outcome(job.id, "retry", str(e))
    except (CorruptInputError, UnsupportedInputError) as e:
        return Outcome(job.id, "failed", str(e))
    except HostplugError as e:  # a recipe the engine refuses (from a sidecar): rendering again will not help
        return Outcome(job.id, "failed", str(e))
    kept = [p for p in job.previous_outputs if p not in targets and os.path.exists(p)]
    note = (f"the earlier output{'s' if len(kept) > 1 else ''} {', '.join(kept)} kept: its outputs are named "
            "otherwise now (a {style} or {date} in the template; a render beside its original takes the original's "
            "exact name since this version); remove what is not wanted") if kept else ""
    return Outcome(job.id, "done", note, digest, tuple(targets), timings=dict(result.timings),
                   notice=read.notice or "")
