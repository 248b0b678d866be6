"""The engine as a library: the names it exports, its docstring example, and renders from a file to a file that
equal what the command line writes; and the command line's layout (one version, a fast ``--help``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile

import engine
from tests.conftest import hostplug

REPO = Path(__file__).resolve().parents[1]


def test_every_exported_name_resolves() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name


def test_the_docstring_example_runs(tmp_path: Path, sample_dng: Path, monkeypatch) -> None:
    shutil.copy(sample_dng, tmp_path / "IMG_0001.ARW")
    monkeypatch.chdir(tmp_path)
    code = "\n".join(line.strip() for line in engine.__doc__.splitlines() if line.startswith("    "))
    assert "engine.write_image" in code and "engine.render_file" in code and "engine.rerender_file" in code
    exec(compile(code, "engine.__doc__", "exec"), {})  # noqa: S102 - the example is this repository's own text
    assert tifffile.imread(tmp_path / "IMG_0001.tif").dtype == np.uint16
    assert _png(tmp_path / "IMG_0001_rerender.jpg").shape == _png(tmp_path / "IMG_0001.jpg").shape


def test_render_file_writes_what_the_command_line_writes(tmp_path: Path, sample_dng: Path) -> None:
    result = engine.render_file(sample_dng, tmp_path / "library.tif", changes={"exposure": 0.5, "contrast": 10})
    assert result.output == tmp_path / "library.tif" and result.recipe.exposure == 0.5
    assert hostplug("render", sample_dng, "--out", tmp_path / "cli.tif", "--exposure", "0.5", "--contrast", "10")\
        .exit_code == 0
    assert np.array_equal(tifffile.imread(tmp_path / "library.tif"), tifffile.imread(tmp_path / "cli.tif"))


def test_rerender_file_reproduces_the_render(tmp_path: Path, sample_dng: Path) -> None:
    raw = tmp_path / "IMG_0001.dng"
    shutil.copy(sample_dng, raw)
    first = engine.render_file(raw, tmp_path / "first.png", changes={"temperature": 4800})
    assert first.recipe.wb == "custom"  # a temperature implies custom white balance (Recipe.replace's rule)
    again = engine.rerender_file(first.output)
    assert again.output == tmp_path / "first_rerender.png" and again.source == raw and again.notice is None
    assert np.array_equal(_png(again.output), _png(first.output))


def test_two_rerenders_of_one_output_at_once_take_two_names(tmp_path: Path, sample_dng: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # the second found first_rerender.png free, as the first did, and was told to pass --overwrite
    raw = tmp_path / "IMG_0001.dng"
    shutil.copy(sample_dng, raw)
    first = engine.render_file(raw, tmp_path / "first.png", engine.Recipe(), engine.OutputOptions(long_edge=200))
    write_png = engine.output.write._ENCODERS["png"]
    taken = tmp_path / "first_rerender.png"

    def meanwhile(partial: Path, *args: object) -> None:
        if not taken.exists():
            taken.write_bytes(b"the other re-render's")
        write_png(partial, *args)

    monkeypatch.setitem(engine.output.write._ENCODERS, "png", meanwhile)
    again = engine.rerender_file(first.output, {"exposure": 0.5})
    assert again.output == tmp_path / "first_rerender-2.png" and taken.read_bytes() == b"the other re-render's"


@pytest.mark.parametrize("how", ["rendered whole, written small", "a preview written whole"])
def test_rerender_file_reproduces_what_a_script_wrote(tmp_path: Path, sample_dng: Path, how: str) -> None:
    # the record held only the long edge, and a re-render took the other path to it: up to 116 of 255 apart
    source = engine.open(Path(shutil.copy(sample_dng, tmp_path / "IMG_0001.dng")))
    if how == "rendered whole, written small":
        engine.write_image(engine.render(source), tmp_path / "out.png", engine.OutputOptions(long_edge=400, bits=8))
    else:  # 600 px is more than half the picture: a re-render by the outputs' rule renders the whole picture
        engine.write_image(engine.render(source, preview=600), tmp_path / "out.png")
    again = engine.rerender_file(tmp_path / "out.png")
    assert again.notice is None and np.array_equal(_png(again.output), _png(tmp_path / "out.png"))


@pytest.mark.parametrize(("name", "value"), [("output", "[90]"), ("output", '{"long_edge":"big"}'),
                                             ("output", '{"space":"xyz9"}'), ("output", '{"quality":900}'),
                                             ("output", '{"long_edge":3}'), ("decided", '{"photofinish":[1]}')])
def test_a_damaged_record_is_one_error(tmp_path: Path, sample_dng: Path, name: str, value: str) -> None:
    import pyexiv2

    from engine.output.metadata import register_namespace

    raw = Path(shutil.copy(sample_dng, tmp_path / "IMG_0001.dng"))
    out = engine.render_file(raw, tmp_path / "out.png", engine.Recipe(), engine.OutputOptions(long_edge=128)).output
    register_namespace()
    with pyexiv2.Image(str(out)) as image:
        image.modify_xmp({f"Xmp.hostplug.{name}": value, "Xmp.hostplug.engineVersion": "0.0.1"})
    with pytest.raises(engine.RecipeError, match=f"{out}: its "):
        engine.rerender_file(out)


def _png(path: Path) -> np.ndarray:
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_one_version_everywhere() -> None:
    import hostplug

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert engine.__version__ == hostplug.__version__ == declared
    done = subprocess.run([sys.executable, "-c", "from hostplug.cli import main; main()", "--version"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith(declared)
    sources = [p for p in (REPO / "engine").rglob("*.py")] + [p for p in (REPO / "hostplug").rglob("*.py")]
    assert not [p for p in sources if re.search(r"__version__\s*=\s*['\"]", p.read_text())]


def test_help_imports_no_heavy_module() -> None:
    code = ("import sys\nfrom hostplug.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('loaded:', *(m for m in ('torch', 'numba', 'cv2', 'rawpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "loaded:", done.stdout


def test_open_names_an_empty_or_wrongly_typed_path_for_what_it_is() -> None:
    import engine

    with pytest.raises(engine.InputNotFoundError, match="path is empty"):
        engine.open("")  # was ".: refused, the input is a folder"
    with pytest.raises(engine.InputNotFoundError, match="must be a path"):
        engine.open(None)


def test_a_dict_where_a_recipe_or_output_options_belong_is_an_engine_error(tmp_path: Path, sample_dng: Path) -> None:
    rendered = engine.render(engine.open(sample_dng), preview=64)
    with pytest.raises(engine.OptionError, match="must be an engine.OutputOptions"):
        engine.write_image(rendered, tmp_path / "x.tif", {"bits": 8})
    with pytest.raises(engine.RecipeError, match="must be an engine.Recipe"):
        engine.render_file(sample_dng, tmp_path / "y.jpg", recipe={"exposure": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_argument_type_is_an_engine_error_before_any_work(tmp_path: Path, sample_dng: Path) -> None:
    """A script's wrong argument was an AttributeError or TypeError from deep inside, some of them mid-render."""
    source = engine.open(sample_dng)
    rendered = engine.render(source, preview=64)
    folder = tmp_path / "out.tif"
    folder.mkdir()
    wrong = [
        (lambda: engine.render(b"x.dng"), engine.InputNotFoundError, "must be a path or what engine.open returns"),
        (lambda: engine.render(source, progress="x"), engine.RecipeError, "progress must be a function"),
        (lambda: engine.render(source, cache={}), engine.RecipeError, "must be an engine.stage_cache.StageCache"),
        (lambda: engine.write_image(source, tmp_path / "w.tif"), engine.OptionError, "what engine.render returns"),
        (lambda: engine.write_image(rendered, None), engine.OutputError, "output must be a path"),
        (lambda: engine.write_image(rendered, tmp_path / "w.tif", extra_xmp=[1]), engine.OptionError, "extra_xmp"),
        (lambda: engine.render_file(None, tmp_path / "w.tif"), engine.InputNotFoundError, "must be a path"),
        (lambda: engine.render_files(sample_dng, [tmp_path / "w.tif"]), engine.OptionError, "(path, engine.Output"),
        (lambda: engine.OutputOptions(overwrite="false"), engine.OptionError, "overwrite must be True or False"),
        (lambda: engine.write_image(rendered, folder, engine.OutputOptions(overwrite=True)), engine.OutputError,
         "out.tif is a folder; name the output file in it"),  # was "exists; pass --overwrite", then "Is a directory"
    ]
    for call, error, words in wrong:
        with pytest.raises(error, match=re.escape(words)):
            call()
    assert list(tmp_path.iterdir()) == [folder] and list(folder.iterdir()) == []


def test_no_two_format_or_space_names_fold_alike() -> None:
    # canonical_name takes the first match: two names that fold alike would make one of them unreachable
    from engine.output.formats import FORMAT_ALIASES, FORMATS, SPACE_ALIASES, SPACE_NAMES, canonical_name

    for names, aliases in ((FORMATS, FORMAT_ALIASES), (SPACE_NAMES, SPACE_ALIASES)):
        written = [*names, *aliases]
        assert len({w.replace("-", "").replace("_", "").replace(" ", "").casefold() for w in written}) == len(written)
        assert all(canonical_name(alias, names, aliases) == name for alias, name in aliases.items())


def test_output_options_read_formats_and_spaces_as_people_write_them() -> None:
    # the command line took "JPG" and "sRGB" and the library refused them; "JPEG" was kept as typed
    options = engine.OutputOptions(format="JPG", space="Adobe RGB")
    assert (options.format, options.space) == ("jpeg", "adobe-rgb")
    assert engine.OutputOptions(format="JPEG", space="p3") == engine.OutputOptions(format="jpeg", space="display-p3")


def test_render_files_takes_any_pairs_of_outputs(tmp_path: Path, sample_dng: Path) -> None:
    # a generator of outputs was used up by the check, then "no output to write"; lists were refused
    result = engine.render_files(sample_dng, ((tmp_path / name, None) for name in ("a.jpg", "b.png")))
    assert result.outputs == (tmp_path / "a.jpg", tmp_path / "b.png")
    assert engine.render_files(sample_dng, [[tmp_path / "c.jpg", None]]).outputs == (tmp_path / "c.jpg",)


def test_wrong_arguments_from_a_script_are_the_engines_errors(sample_dng: Path, tmp_path: Path) -> None:
    """Each raised a bare TypeError or ValueError from inside the engine."""
    from dataclasses import replace

    from engine.edits import apply_changes
    from engine.xmp.sidecar import sidecar_recipe

    rendered = engine.render(engine.open(sample_dng), preview=64)
    calls = [lambda: apply_changes(None, {"stages": {"denoise": {"params": [1]}}}),
             lambda: engine.Recipe.from_json(None),
             lambda: engine.Recipe.from_json(b"{}"),
             lambda: engine.StageCache(max_bytes="1GB"),
             lambda: engine.StageCache(stages="colour"),
             lambda: engine.StageCache(stages=["colour", "nosuch"]),
             lambda: sidecar_recipe(None),
             lambda: engine.write_image(replace(rendered, pixels=rendered.pixels[..., 0]), tmp_path / "a.png"),
             lambda: engine.write_image(replace(rendered, pixels=(rendered.pixels * 255).astype(np.uint8)),
                                        tmp_path / "b.png")]
    for call in calls:
        with pytest.raises(engine.HostplugError):
            call()
    assert list(tmp_path.iterdir()) == []


def test_numpy_whole_numbers_are_whole_numbers_for_outputs_and_previews(sample_dng: Path) -> None:
    """A script that computes sizes with numpy passes numpy ints ("is not a whole number" refused them)."""

    options = engine.OutputOptions(long_edge=np.int32(100), quality=np.int64(90), bits=np.int64(16),
                                   modified=np.int64(5))
    assert (options.long_edge, options.quality, options.bits, options.modified) == (100, 90, 16, 5)
    assert type(options.long_edge) is int
    assert engine.render(engine.open(sample_dng), preview=np.int64(100)).pixels.shape[1] == 100


def test_a_source_made_in_code_writes_an_output_without_a_source_hash(tmp_path: Path) -> None:
    """Its path names no file it was read from: the output records no SHA-256 of whatever is there (writing
    failed with FileNotFoundError), and a re-render says it cannot find the source."""
    pixels = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    source = engine.Source(path=tmp_path / "made.png", kind="rgb", sensor=pixels, black=np.zeros(3),
                           white=np.ones(3), cfa=None, as_shot_neutral=np.ones(3), neutral_origin="",
                           calibration=None)
    engine.write_image(engine.render(source), tmp_path / "made.jpg")
    with pytest.raises(engine.InputNotFoundError, match="cannot find its source"):
        engine.rerender_file(tmp_path / "made.jpg")


def test_arguments_of_the_wrong_type_are_one_clear_error(tmp_path: Path, sample_dng: Path) -> None:
    """What a script may pass wrongly gets the library's own errors, not AttributeError or TypeError from deep
    inside; a string of changes was read character by character ("unknown change '1'")."""
    output = engine.render_file(sample_dng, tmp_path / "x.png").output
    source = engine.open(sample_dng)
    cases = [
        (lambda: engine.apply_changes({"exposure": 1}, None), engine.RecipeError, "must be an engine.Recipe"),
        (lambda: engine.render_file(sample_dng, tmp_path / "y.png", base={"exposure": 1}), engine.RecipeError,
         "must be an engine.Recipe"),
        (lambda: engine.apply_changes(None, {"presets": 5}), engine.RecipeError, "list of preset names"),
        (lambda: engine.apply_changes(None, {"recipe_file": 3}), engine.RecipeError, "must be a path"),
        (lambda: engine.apply_changes(None, "exposure=1"), engine.RecipeError, "changes must be a dict"),
        (lambda: engine.Recipe().replace(nosuch=1), engine.RecipeError, "unknown recipe setting 'nosuch'"),
        (lambda: engine.render(source, preview=64, stages_dir=3), engine.RecipeError, "stages_dir must be"),
        (lambda: engine.rerender_file(output, target=3), engine.OptionError, "target must be a path"),
        (lambda: engine.rerender_file(output, search=5), engine.OptionError, "search must be"),
    ]
    for call, error, words in cases:
        with pytest.raises(error, match=words):
            call()
    assert not (tmp_path / "y.png").exists()
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(tmp_path / "x.png", moved / "x.png")  # the raw stays where it was recorded: found by searching
    raw_folder = sample_dng.parent
    result = engine.rerender_file(moved / "x.png", search=(folder for folder in [raw_folder]))  # a generator too
    assert result.output.exists()


def test_extra_xmp_cannot_replace_the_recorded_recipe(tmp_path: Path, sample_dng: Path) -> None:
    # a tester's script carried an older output's XMP forward: the TIFF recorded +3 EV over pixels rendered at 0
    engine.render_file(sample_dng, tmp_path / "x.tif", engine.Recipe(exposure=0.0),
                       engine.OutputOptions(long_edge=200),
                       extra_xmp={"Xmp.hostplug.recipe": engine.Recipe(exposure=3.0).to_json(), "Xmp.xmp.Rating": "4"})
    again = engine.rerender_file(tmp_path / "x.tif", {})
    assert again.recipe.exposure == 0.0
    assert np.array_equal(tifffile.imread(again.output), tifffile.imread(tmp_path / "x.tif"))


def test_writing_an_empty_or_not_a_number_image_is_one_output_error(tmp_path: Path, sample_dng: Path) -> None:
    import dataclasses

    rendered = engine.render(engine.open(sample_dng), preview=100)
    broken = rendered.pixels.copy()
    broken[0, 0] = [np.nan, -np.inf, np.inf]
    for pixels, says in ((rendered.pixels[50:50], "empty"), (broken, "3 values that are not numbers")):
        for suffix in ("tif", "png", "jpg"):
            with pytest.raises(engine.OutputError, match=says):
                engine.write_image(dataclasses.replace(rendered, pixels=pixels), tmp_path / f"x.{suffix}")
    assert list(tmp_path.iterdir()) == []


def test_a_source_made_in_code_with_arrays_the_stages_cannot_read_is_refused_in_one_line(sample_dng: Path) -> None:
    import dataclasses

    image = engine.open(Path(engine.__file__).parent / "samples" / "hostplug_colorchecker.dng")
    rgb = np.random.default_rng(0).random((40, 60, 3)).astype(np.float32)
    made = engine.Source(path=Path("made.png"), kind="rgb", sensor=rgb, black=np.zeros(3), white=np.ones(3),
                         cfa=None, as_shot_neutral=np.ones(3), neutral_origin="code", calibration=None)
    assert engine.render(made).pixels.dtype == np.float32
    for sensor, says in (((rgb * 255).astype(np.uint8), "is uint8; a rgb Source's sensor is float32"),
                         (np.where(rgb > 0.9, np.nan, rgb), "not numbers"), (rgb[..., :2], "has shape"),
                         (rgb[:0], "has shape"), (rgb.astype(np.float64), "float64")):
        with pytest.raises(engine.CorruptInputError, match=says):
            engine.render(dataclasses.replace(made, sensor=sensor))
    with pytest.raises(engine.CorruptInputError, match="H x W"):
        engine.render(dataclasses.replace(image, sensor=image.sensor[..., None].repeat(3, axis=2)))  # a cfa


def test_numpy_numbers_in_stage_params_are_the_numbers_they_stand_for(sample_dng: Path) -> None:
    recipe = engine.Recipe(stages={"detail": engine.StageSettings(params={"amount": np.float32(50)}),
                                   "white_balance": engine.StageSettings(params={"neutral": np.array([0.5, 1, 0.6])})})
    assert engine.Recipe.from_json(recipe.to_json()) == recipe
    assert engine.render(engine.open(sample_dng), recipe, preview=100).pixels.shape[1] == 100


def test_a_wrong_render_size_is_named_as_the_caller_named_it(tmp_path: Path, sample_dng: Path) -> None:
    with pytest.raises(engine.RecipeError, match="render_size 'big'"):  # it said "preview 'big'"
        engine.render_files(sample_dng, [(tmp_path / "x.tif", None)], render_size="big")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_a_floating_point_linear_raw_dng_renders(tmp_path: Path, dtype: type) -> None:
    # a reviewer: the Source check took a raw's sensor for integers only, and refused the float16 LinearRaw DNGs
    # that Lightroom's HDR and panorama merges write
    def rationals(*values: float) -> list[int]:
        return [int(part) for value in values for part in (round(value * 10000), 10000)]

    rows, columns = np.mgrid[0:96, 0:128]
    picture = np.stack([columns / 160 + 0.05, np.full(rows.shape, 0.3), rows / 120 + 0.05], axis=-1).astype(dtype)
    tags = [(50706, "B", 4, (1, 4, 0, 0), True), (50708, "s", 0, "Float merge", True),
            (50721, "2i", 9, rationals(0.8, -0.3, -0.05, -0.4, 1.2, 0.2, -0.1, 0.2, 0.6), True),
            (50778, "H", 1, 21, True), (50728, "2I", 3, rationals(1, 1, 1), True), (50717, "I", 3, (1, 1, 1), True)]
    path = tmp_path / "merge.dng"
    tifffile.imwrite(path, picture, photometric=34892, extratags=tags, metadata=None)
    source = engine.open(path)
    assert source.sensor.dtype == dtype
    pixels = engine.render(source, preview=64).pixels
    assert np.isfinite(pixels).all() and pixels[..., 0].std() > 0.01  # the gradient, not a refusal


def test_write_image_never_replaces_its_own_input(tmp_path: Path, sample_dng: Path) -> None:
    """A tester's: write_image(..., overwrite=True) over the file rendered replaced the photograph with its render
    (render_file refused it, write_image did not)."""
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.full((48, 64, 3), 120, np.uint8)).save(photo)
    before = photo.read_bytes()
    rendered = engine.render(engine.open(photo))
    (tmp_path / "link.jpg").symlink_to(photo)  # another spelling of the same file
    for target in (photo, tmp_path / "link.jpg", tmp_path / "." / "photo.jpg"):
        with pytest.raises(engine.OutputError, match="this is the input itself"):
            engine.write_image(rendered, target, engine.OutputOptions(overwrite=True))
    assert photo.read_bytes() == before


def test_an_output_is_named_as_its_format(tmp_path: Path, sample_dng: Path) -> None:
    """TIFF data under a raw's name replaced another raw (--format tiff -o victim.dng --overwrite)."""
    victim = Path(shutil.copy(sample_dng, tmp_path / "victim.dng"))
    rendered = engine.render(engine.open(sample_dng), preview=64)
    for name, fmt in (("victim.dng", "tiff"), ("x.raw", "png"), ("x.CR3", "jpeg")):
        with pytest.raises(engine.OutputOptionError, match="is named as a raw"):
            engine.write_image(rendered, tmp_path / name, engine.OutputOptions(overwrite=True, format=fmt))
    assert victim.read_bytes() == sample_dng.read_bytes()
    result = hostplug("render", sample_dng, "-o", victim, "--format", "tiff", "--overwrite", "--no-service")
    assert result.exit_code == 2
    assert "victim.dng is named as a raw, not a TIFF file; name it victim.tif" in result.output
    assert victim.read_bytes() == sample_dng.read_bytes()


def test_an_output_never_replaces_a_pipe_or_a_device(tmp_path: Path, sample_dng: Path) -> None:
    import os
    import stat

    rendered = engine.render(engine.open(sample_dng), preview=64)
    os.mkfifo(tmp_path / "out.tif")
    with pytest.raises(engine.OutputError, match="a device, pipe or socket"):
        engine.write_image(rendered, tmp_path / "out.tif", engine.OutputOptions(overwrite=True))
    assert stat.S_ISFIFO((tmp_path / "out.tif").lstat().st_mode)
    (tmp_path / "link.tif").symlink_to(tmp_path / "out.tif")  # -o /dev/stdout: a link to no file (a reviewer's)
    with pytest.raises(engine.OutputError, match="links to"):
        engine.write_image(rendered, tmp_path / "link.tif", engine.OutputOptions(overwrite=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.tif", "out.tif"]


def test_the_sidecar_recipe_of_a_missing_raw_is_an_error() -> None:
    with pytest.raises(engine.InputNotFoundError, match="no such file"):
        engine.sidecar_recipe("/nonexistent/IMG_0001.ARW")


def test_a_far_future_modification_time_is_refused_when_the_options_are_made() -> None:
    with pytest.raises(engine.OutputOptionError, match="the end of the year 9999"):
        engine.OutputOptions(modified=10**20)


def test_every_public_function_s_annotations_resolve() -> None:
    """A studio engineer's tools (typing.get_type_hints, validators, documentation) read the library's
    annotations: names kept out of a module for start-up used to raise NameError there."""
    import inspect
    import typing

    for name in engine.__all__:
        obj = getattr(engine, name)
        members = [m for _, m in inspect.getmembers(obj, inspect.isfunction)] if inspect.isclass(obj) else []
        for target in (obj, *members):
            if callable(target):
                typing.get_type_hints(target)
