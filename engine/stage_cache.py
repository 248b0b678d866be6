"""Stage outputs kept between renders, so a re-render starts after the last stage whose inputs did not change.

A checkpoint is what the pipeline holds after one stage: that stage's output and the :class:`Context` state later
stages read (``white``, ``shading``, ``notes``, ``low_input``, ``full_input``). Its key is the source's
content (:func:`source_identity`: the file's SHA-256, a digest of the sensor data and the fields stages read),
the preview size, the device, and the
implementation, switch and resolved params of every stage up to and including that one. So after an exposure change (a
photofinish param) the checkpoint after the colour stage still matches and the render resumes at photofinish;
after a white balance change it resumes at white balance, reusing decoding, demosaicing and noise reduction.

Checkpoints hold copies (stages work in place on their input) and are handed out as copies (on the torch path,
tensors kept on their device); the cache is bounded
in bytes, least recently used first out, and may keep only some stages' checkpoints (``stages``): at full size
one checkpoint of an 18 MP raw is 220 MB, so the render service keeps its full-size renders only after the stages
a change most often follows (:data:`FULL_SIZE_STAGES`). :func:`engine.pipeline.render` consults it when given one;
the render service keeps one for its previews and one for its full-size renders.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import weakref
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import RecipeError, shown
from engine.io.gain_map import Shading
from engine.io.source import Source
from engine.recipe import Recipe
from engine.stages.base import Context, Stage, WhiteDecision, params_dict
from engine.stages.catalogue import DEFAULT_IMPLEMENTATIONS

DEFAULT_MAX_BYTES = 768 << 20  # about 4 renders' worth of checkpoints at 2 MP (6 stages of 24 MB and inputs)
# The checkpoints worth their memory at full size: after noise reduction (a white balance change resumes there),
# after colour (exposure, tone, style) and after upsampling (sharpening, or the same settings again).
FULL_SIZE_STAGES = ("denoise", "colour", "upsample")


@dataclass(frozen=True)
class Checkpoint:
    """The pipeline's state after one stage (arrays, or device tensors, are private copies)."""

    image: Any
    white: WhiteDecision | None
    shading: Shading | None
    notes: dict[str, Any]
    low_input: np.ndarray | None
    full_input: Any

    @property
    def nbytes(self) -> int:
        """Bytes held by the checkpoint's images."""
        return sum(a.nbytes for a in (self.image, self.low_input, self.full_input) if a is not None)


def _copy(array: Any) -> Any:
    """A copy of a numpy array or a tensor (which stays on its device), or None."""
    if array is None:
        return None
    return array.copy() if isinstance(array, np.ndarray) else array.clone()


_LEAVES = frozenset({str, int, float, bool, type(None)})


def _copy_notes(value: Any) -> Any:
    """A copy of JSON-like notes: new dicts and lists, shared immutable leaves (faster than ``copy.deepcopy``,
    which cost a tenth of a preview's CPU time on the photofinish operators' tables)."""
    if type(value) in _LEAVES:
        return value
    if isinstance(value, dict):
        return {k: v if type(v) in _LEAVES else _copy_notes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _LEAVES else _copy_notes(v) for v in value]
    return copy.deepcopy(value)


def source_identity(source: Source) -> list[Any]:
    """What the pipeline reads of a source, as a key: its file's SHA-256, its fields as they are now and a digest
    of its sensor's pixels (a script may derive one Source from another, ``dataclasses.replace`` with other pixels
    or another white). A field's array is keyed by all its values (numpy's own text of one shortens it)."""
    fields = {f.name: _comparable(getattr(source, f.name)) for f in dataclasses.fields(source)
              if f.name not in ("sensor", "path", "exif")}  # no stage reads the EXIF: outputs carry it
    return [source.sha256, sensor_digest(source.sensor), fields]


def _comparable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [str(value.dtype), value.shape, hashlib.blake2b(np.ascontiguousarray(value).data).hexdigest()]
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


_SENSOR_DIGESTS: dict[int, str] = {}


def sensor_digest(sensor: np.ndarray) -> str:
    """A digest of a sensor's pixels, computed once per array (about 30 ms for 18 MP): an array is taken as not
    changed in place after it was opened, as the Source's documentation asks (a changed copy, made with
    ``dataclasses.replace``, is a new array and gets its own digest)."""
    key = id(sensor)
    digest = _SENSOR_DIGESTS.get(key)
    if digest is None:
        data = np.ascontiguousarray(sensor)
        digest = f"{data.dtype}{data.shape}" + hashlib.blake2b(data.data).hexdigest()
        _SENSOR_DIGESTS[key] = digest
        weakref.finalize(sensor, _SENSOR_DIGESTS.pop, key, None)  # the id may be another array's once this one goes
    return digest


def stage_keys(source: Source, stages: Sequence[Stage], params: dict[str, Any], recipe: Recipe,
               device: str, preview: int | None) -> list[str] | None:
    """One key per stage: the source as the pipeline reads it (:func:`source_identity`: the SHA-256 of the file it
    was opened from, which may have been replaced since, its fields and pixels), preview size, device, the models'
    hashes and, for that stage and every stage before it, its implementation, switch and resolved params. None
    when the source cannot be keyed."""
    if not source.sha256:
        return None
    from engine.models import model_hashes  # other networks (another folder, or retrained) make other outputs

    digest = hashlib.sha1(json.dumps([source_identity(source), preview, device, model_hashes()], sort_keys=True,
                                     default=str).encode())
    keys = []
    for stage in stages:
        facts = [stage.name, stage.implementation, recipe.stage(stage.name).enabled, params_dict(params[stage.name])]
        digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
        keys.append(digest.copy().hexdigest())
    return keys


class StageCache:
    """Checkpoints keyed by :func:`stage_keys`, at most ``max_bytes`` of images, least recently used out first;
    only those after the stages named in ``stages`` (None: after every stage)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, stages: Collection[str] | None = None) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise RecipeError(f"StageCache's max_bytes must be a whole number of bytes, not {shown(max_bytes)}")
        known = DEFAULT_IMPLEMENTATIONS  # every stage, by name
        if isinstance(stages, str) or (stages is not None and not all(name in known for name in stages)):
            raise RecipeError(f"StageCache's stages must be a collection of stage names ({', '.join(known)}), not "
                              f"{shown(stages)}")
        self.max_bytes = max_bytes
        self.stages = None if stages is None else frozenset(stages)
        self._entries: OrderedDict[str, Checkpoint] = OrderedDict()
        self.bytes = 0
        self.hits = 0  # renders that resumed from a checkpoint
        self.misses = 0  # renders that found none

    def __len__(self) -> int:
        return len(self._entries)

    def resume(self, keys: Sequence[str], ctx: Context) -> tuple[int, Any]:
        """Restore ``ctx`` from the latest stage's checkpoint found in ``keys`` (checked from the last stage
        back); returns the index of the first stage still to run and its input (a copy), or (0, None)."""
        for index in range(len(keys) - 1, -1, -1):
            found = self._entries.get(keys[index])
            if found is not None:
                self._entries.move_to_end(keys[index])
                self.hits += 1
                ctx.white, ctx.shading = found.white, found.shading
                ctx.notes.update(_copy_notes(found.notes))
                ctx.low_input, ctx.full_input = _copy(found.low_input), _copy(found.full_input)
                return index + 1, _copy(found.image)
        self.misses += 1
        return 0, None

    def store(self, key: str, image: Any, ctx: Context, stage: str) -> None:
        """Keep copies of ``image`` (the output of the stage called ``stage``) and of the context's state under
        ``key``, if this cache keeps that stage's checkpoints."""
        if key in self._entries or (self.stages is not None and stage not in self.stages):
            return
        checkpoint = Checkpoint(image=_copy(image), white=ctx.white, shading=ctx.shading,
                                notes=_copy_notes(ctx.notes),
                                low_input=_copy(ctx.low_input), full_input=_copy(ctx.full_input))
        if checkpoint.nbytes > self.max_bytes:
            return  # bigger than the whole cache: keeping it would push everything else out
        self._entries[key] = checkpoint
        self.bytes += checkpoint.nbytes
        while self.bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= dropped.nbytes

    def clear(self) -> None:
        """Drop every checkpoint."""
        self._entries.clear()
        self.bytes = 0

    def stats(self) -> dict[str, int]:
        """Checkpoints held, their bytes, and renders that resumed (hits) or started afresh (misses)."""
        return {"checkpoints": len(self._entries), "bytes": self.bytes, "hits": self.hits, "misses": self.misses}
