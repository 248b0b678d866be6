"""The recipe: one versioned, validated description of a render that survives JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine import Recipe, RecipeError, StageSettings
from engine.recipe import RECIPE_VERSION


def full_recipe() -> Recipe:
    return Recipe(
        style="natural", style_strength=1.5, exposure=-0.7, temperature=4300.0, tint=12.0, wb="custom",
        contrast=20.0, highlights=-40.0, shadows=35.0, saturation=-10.0, vibrance=25.0, sharpening=60.0,
        denoise=30.0,
        stages={"denoise": StageSettings(enabled=False),
                "upsample": StageSettings(implementation="bilinear"),
                "detail": StageSettings(params={"radius": 1.5})},
    )


def test_json_round_trip_keeps_every_setting() -> None:
    recipe = full_recipe()
    text = recipe.to_json()
    assert Recipe.from_json(text) == recipe
    assert json.loads(text)["version"] == RECIPE_VERSION


def test_default_recipe_round_trips_and_equal_recipes_give_equal_json() -> None:
    assert Recipe.from_json(Recipe().to_json()) == Recipe()
    assert full_recipe().to_json() == full_recipe().to_json()


def test_a_recipe_without_version_is_read_as_the_current_one() -> None:
    assert Recipe.from_dict({"exposure": 1.0}) == Recipe(exposure=1.0)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"exposure": 7.0}, "exposure 7 is out of range"),
        ({"temperature": 25000.01}, "temperature 25000.01 is out of range"),  # was "25000", which looks in range
        ({"saturation": -101}, "saturation"),
        ({"temperature": 1000.0, "wb": "custom"}, "temperature"),
        ({"sharpening": -1}, "sharpening"),
        ({"exposure": "bright"}, "exposure must be a number"),
        ({"contrast": True}, "contrast must be a number"),
        ({"exposure": float("nan")}, "exposure must be a number"),
        ({"wb": "daylight"}, "white balance 'daylight'"),
        ({"wb": "custom"}, "needs a temperature"),
        ({"style": ""}, "style"),
        ({"brightness": 1}, "unknown recipe setting 'brightness'"),
        ({"version": RECIPE_VERSION + 1}, "newer than this hostplug"),
        ({"version": "1"}, "version"),
        ({"version": 0}, "version"),
        ({"stages": "denoise"}, "'stages' must be an object"),
        ({"stages": {"denoise": {"enabled": "no"}}}, "'enabled' must be true or false"),
        ({"stages": {"denoise": {"colour": 1}}}, "unknown key 'colour'"),
        ({"stages": {"denoise": {"params": [1]}}}, "'params' must be an object"),
        ({"stages": {"denoise": {"implementation": 3}}}, "'implementation' must be a name"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_invalid_recipes_are_refused_with_a_clear_message(data: object, words: str) -> None:
    with pytest.raises(RecipeError, match=words.replace("(", r"\(")) as info:
        Recipe.from_dict(data)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_malformed_json_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="not valid JSON"):
        Recipe.from_json("{exposure: 1")


def test_constructing_an_invalid_recipe_directly_is_refused_too() -> None:
    with pytest.raises(RecipeError):
        Recipe(exposure=-6.5)
    with pytest.raises(RecipeError):
        Recipe().replace(vibrance=150)
    with pytest.raises(RecipeError, match="exposure must be a number, not None"):
        Recipe(exposure=None)  # type: ignore[arg-type]  # was accepted, and refused mid-render as a stage's
    assert Recipe(sharpening=None, denoise=None) == Recipe()  # None means the style's, or automatic


def test_setting_a_temperature_implies_custom_white_balance() -> None:
    recipe = Recipe().replace(temperature=3200.0)
    assert recipe.wb == "custom" and recipe.temperature == 3200.0
    assert Recipe().replace(tint=10.0, temperature=5000.0).wb == "custom"


def test_sidecar_properties_imply_the_white_balance_mode_as_the_recipe_does() -> None:
    from engine.errors import SidecarError
    from engine.xmp.recipe_properties import properties_to_recipe

    def read(**properties: str) -> Recipe:
        return properties_to_recipe({"schemaVersion": "1", **properties}, "test.xmp")

    assert read(temperature="3200").wb == Recipe().replace(temperature=3200.0).wb == "custom"
    assert read(temperature="3200", wb="as-shot").wb == "as-shot"
    assert read(exposure="0.5").wb == "as-shot"
    with pytest.raises(RecipeError) as cli:  # a tint alone: refused on the command line, so in a sidecar too
        Recipe().replace(tint=10.0)
    with pytest.raises(SidecarError, match="test.xmp: .*needs a temperature") as sidecar:
        read(tint="10")
    assert str(cli.value) in str(sidecar.value)


def test_replace_keeps_an_explicit_white_balance_mode_and_ignores_none() -> None:
    recipe = Recipe(exposure=0.5)
    assert recipe.replace(exposure=None, contrast=None) == recipe
    assert recipe.replace(wb="auto").wb == "auto"


def test_a_recipe_is_immutable() -> None:
    recipe = Recipe()
    with pytest.raises(AttributeError):
        recipe.exposure = 1.0  # type: ignore[misc]


def test_stage_settings_default_when_the_recipe_says_nothing() -> None:
    assert Recipe().stage("denoise") == StageSettings()
    assert full_recipe().stage("denoise").enabled is False


def test_stored_stage_params_say_which_version_they_are() -> None:
    recipe = Recipe(stages={"detail": StageSettings(params={"radius": 1.5}),
                            "white_balance": StageSettings(params={"mode": "auto"}),
                            "denoise": StageSettings(enabled=False)})
    stages = recipe.to_dict()["stages"]
    assert stages["detail"]["params"] == {"version": 1, "radius": 1.5}
    assert stages["white_balance"]["params"] == {"version": 4, "mode": "auto"}  # white balance is at version 4
    assert "params" not in stages["denoise"]


def test_params_without_a_version_are_version_1_only_in_a_recipe_of_version_1() -> None:
    # Recipe version 1 was written before params were stamped: white balance (now at version 3) must still
    # migrate its version 1 params (to the classical estimator).
    stored = Recipe.from_dict({"version": 1, "stages": {"white_balance": {"params": {"mode": "auto"}}}})
    assert stored.stage("white_balance").params == {"version": 1, "mode": "auto"}
    assert Recipe.from_json(stored.to_json()) == stored
    # Every later recipe hostplug wrote stamps them: unstamped ones were written by hand, now (a recipe file, a
    # preset), and are the current version, as --set's are. They used to silently pin an old denoiser.
    for written in ({"version": RECIPE_VERSION}, {}):
        current = Recipe.from_dict({**written, "stages": {"white_balance": {"params": {"mode": "auto"}}}})
        assert current.stage("white_balance").params == {"mode": "auto"}  # in memory, current params need no stamp


def test_a_recipe_version_must_be_a_whole_number() -> None:
    for version in (True, 9.0, "9", 0):
        with pytest.raises(RecipeError, match="recipe version .* is not valid"):
            Recipe.from_dict({"version": version})


def test_params_of_an_unknown_stage_or_implementation_are_kept_as_written() -> None:
    data = {"stages": {"glow": {"params": {"amount": 1}}, "denoise": {"implementation": "magic",
                                                                      "params": {"strength": 1}}}}
    recipe = Recipe.from_dict(data)
    assert recipe.stage("glow").params == {"amount": 1}  # rendering refuses it, naming the stage
    assert recipe.to_dict()["stages"]["denoise"]["params"] == {"strength": 1}


def test_recipe_modules_load_without_the_stages() -> None:
    import subprocess
    import sys

    code = ("import sys, engine.recipe, engine.xmp.recipe_properties; "
            "print(any(m.startswith(('torch', 'engine.stages.base')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_white_balance_settings_never_contradict_each_other() -> None:
    custom = Recipe().replace(temperature=5200, tint=8)
    assert (custom.wb, custom.temperature, custom.tint) == ("custom", 5200, 8)
    for mode in ("as-shot", "auto"):
        # back to the file's or the estimated balance: the custom values go, instead of being shown and not used
        assert (custom.replace(wb=mode).temperature, custom.replace(wb=mode).tint) == (None, None)
        with pytest.raises(RecipeError, match=f"white balance '{mode}' with a temperature or tint"):
            Recipe().replace(wb=mode, tint=50)
        with pytest.raises(RecipeError, match=f"white balance '{mode}' with a temperature or tint"):
            Recipe().replace(wb=mode, temperature=3000)
    with pytest.raises(RecipeError, match="a tint alone shifts none"):
        Recipe().replace(tint=50)


def test_a_temperature_is_a_custom_white_balance_wherever_it_comes_from() -> None:
    # the constructor refused nothing: Recipe(temperature=3000) rendered as-shot while recording 3000 K
    with pytest.raises(RecipeError, match="custom white balance"):
        Recipe(temperature=3000.0)
    assert Recipe(wb="custom", temperature=3000.0).wb == "custom"
    assert Recipe.from_dict({"temperature": 3000.0}).wb == "custom"  # a recipe file without a mode
    # stored beside as-shot (earlier versions kept them unused), they are dropped: the render stays as it was
    for version in (6, 7):
        old = Recipe.from_dict({"version": version, "wb": "as-shot", "temperature": 3000.0, "tint": 5.0})
        assert (old.wb, old.temperature, old.tint) == ("as-shot", None, None)
    from engine.xmp.recipe_properties import properties_to_recipe

    for layout in ("6", "7"):
        sidecar = properties_to_recipe({"schemaVersion": layout, "wb": "as-shot", "tint": "3"}, "IMG.xmp")
        assert (sidecar.wb, sidecar.tint) == ("as-shot", None)


def test_a_hot_folders_as_shot_or_auto_drops_a_presets_temperature() -> None:
    # a hot folder's recipe table on top of a preset with a custom white balance (the watch daemon's path)
    from engine.edits import apply_settings, check_changes
    from engine.xmp.presets import apply_presets

    warm = apply_presets(Recipe(), ("warm-5200",))
    assert warm.temperature == 5200.0
    auto = apply_settings(warm, {"wb": "auto"})
    assert (auto.wb, auto.temperature, auto.tint) == ("auto", None, None)
    with pytest.raises(RecipeError, match="give either, not both"):
        apply_settings(warm, {"wb": "auto", "temperature": 3000.0})
    check_changes({"wb": "custom", "tint": 5.0})  # a stored temperature may be what it shifts


def test_a_hot_folders_stage_params_are_of_the_current_version() -> None:
    # written in a studio.toml today, like --set: not a file an older hostplug stored (those read as version 1,
    # which would silently switch off a DNG's lens corrections, bad-pixel repair and the false-colour passes)
    from engine.edits import apply_settings
    from engine.pipeline import stage_for

    recipe = apply_settings(Recipe(), {"stages": {"demosaic": {"params": {"algorithm": "ahd"}}}})
    params = stage_for("demosaic", recipe).resolve_params(recipe)
    assert params.algorithm == "ahd" and params.gain_map and params.bad_pixels and params.false_colour_passes == 2
    stored = apply_settings(Recipe(), {"stages": {"demosaic": {"params": {"algorithm": "ahd", "version": 1}}}})
    assert not stage_for("demosaic", stored).resolve_params(stored).gain_map  # a version given is kept


@pytest.mark.parametrize("changes, says", [
    ({"exposre": 2.0}, "unknown change 'exposre'"),
    ({"presets": "warm"}, "list of preset names"),
    ({"stages": {"detail": "off"}}, "stage 'detail' must be an object"),
    ({"stages": {"detail": {"enabeld": False}}}, "stage 'detail' must be an object"),
])
def test_a_scripts_mistyped_change_is_refused_not_ignored(changes: dict, says: str) -> None:
    from engine.edits import apply_changes

    with pytest.raises(RecipeError, match=re.escape(says)):
        apply_changes(None, changes)


def test_an_amount_set_now_replaces_its_stage_s_stored_value_and_is_not_given_twice() -> None:
    # a recipe file's denoise strength 20 won over --denoise 30, and the output recorded 30 (a reviewer's)
    from engine.edits import apply_changes
    from engine.pipeline import stage_for

    stored = Recipe.from_dict({"version": 16, "stages": {"denoise": {"params": {"strength": 20}},
                                                         "detail": {"params": {"amount": 10, "radius": 2.0}}}})
    changed = apply_changes(stored, {"denoise": 30, "sharpening": 40})
    assert changed.denoise == 30 and stage_for("denoise", changed).resolve_params(changed).strength == 30
    detail = stage_for("detail", changed).resolve_params(changed)
    assert detail.amount == 40 and detail.radius == 2.0  # the stage's other params stay
    assert apply_changes(stored, {"exposure": 1}).stage("denoise").params["strength"] == 20  # untouched
    with pytest.raises(RecipeError, match="denoise 30 and the denoise stage's strength"):
        apply_changes(None, {"denoise": 30, "stages": {"denoise": {"params": {"strength": 20}}}})
    assert apply_changes(None, {"sharpening": 30, "stages": {"detail": {"enabled": False}}}).sharpening == 30  # kept


def test_what_a_script_may_pass_wrongly_is_a_recipe_error_at_construction() -> None:
    # these were accepted and failed later (an IndexError in the blend, "no" switching a stage on) or raised
    # Python's own errors
    for bad in ({"style": "bogus"}, {"style": "natural:1e308,vivid:1e308"}):
        with pytest.raises(RecipeError):
            Recipe(**bad)
    for settings in ({"enabled": "no"}, {"implementation": 3}, {"params": [1, 2]}):
        with pytest.raises(RecipeError):
            StageSettings(**settings)
    with pytest.raises(RecipeError, match="far too long"):
        Recipe.from_json('{"exposure": ' + "1" * 5000 + "}")


def test_a_recipe_cannot_change_in_place_and_can_be_a_dictionary_key() -> None:
    """A frozen recipe is frozen all through: its stages and their params refuse changes, so a recipe shared with a
    cache or a worker stays what it was; equal recipes hash alike (read back from JSON or a pickle)."""
    import pickle

    recipe = Recipe.from_dict({"exposure": 0.5, "stages": {"white_balance": {"params": {"neutral": [0.5, 1, 0.6]}},
                                                          "detail": {"enabled": False}}})
    with pytest.raises(TypeError, match="Recipe.replace"):
        recipe.stages["denoise"] = StageSettings(enabled=False)  # type: ignore[index]
    with pytest.raises(TypeError):
        recipe.stage("white_balance").params.update(neutral=[1, 1, 1])  # type: ignore[attr-defined]
    with pytest.raises(TypeError):  # values inside too: a changed vector would have changed the hash
        recipe.stage("white_balance").params["neutral"][0] = 0.9
    assert recipe.stage("white_balance").params["neutral"] == [0.5, 1, 0.6]
    assert recipe.stage("detail").enabled is False and "denoise" not in recipe.stages
    again = Recipe.from_json(recipe.to_json())
    thawed = pickle.loads(pickle.dumps(recipe))
    assert again == recipe == thawed and hash(again) == hash(recipe) == hash(thawed)
    assert {recipe: "rendered"}[again] == "rendered"
    assert recipe.replace(exposure=1.0) not in {recipe: "rendered"}


def test_a_style_is_stored_as_one_text_however_it_was_typed() -> None:
    assert Recipe(style=" Vivid ") == Recipe(style="vivid")
    assert Recipe(style="WARM : 0.7, moody:0.3").style == "warm:0.7,moody:0.3"


def test_blends_that_render_alike_store_alike() -> None:
    """A tester's: "moody:0.3,warm:0.7", "warm:7,moody:3" and "warm:1,moody:0" were stored (and compared, and
    cached) as three recipes though each renders as another spelling does."""
    same = ("warm:0.7,moody:0.3", "moody:0.3,warm:0.7", "warm:7,moody:3", "warm:0.4,moody:0.3,warm:0.3")
    assert {Recipe(style=style).style for style in same} == {"warm:0.7,moody:0.3"}
    assert Recipe(style="warm:1,moody:0") == Recipe(style="warm:1") == Recipe(style="warm")


def test_a_stored_blend_reads_back_as_itself() -> None:
    # a reviewer's: vivid:1,warm:1,moody:4 stored as moody:0.666667,... read back as moody:0.666666,...: every
    # store and read moved the weights, and a re-render without changes counted as changed
    import itertools

    from engine.styles import STYLES

    for names in itertools.combinations(STYLES, 3):
        for weights in itertools.product((1, 2, 4, 7), repeat=3):
            recipe = Recipe(style=",".join(f"{n}:{w}" for n, w in zip(names, weights, strict=True)))
            assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_numpy_numbers_from_a_script_are_the_floats_they_stand_for() -> None:
    import numpy as np

    recipe = Recipe(exposure=np.float32(0.5), contrast=np.int64(3))
    assert recipe == Recipe(exposure=0.5, contrast=3.0) and type(recipe.exposure) is float
    assert Recipe.from_json(recipe.to_json()) == recipe
    with pytest.raises(RecipeError, match="exposure must be a number"):
        Recipe(exposure=np.float32("nan"))



@pytest.mark.parametrize("text", ['{"exposure": 1' + "0" * 400 + "}", '{"version": 1' + "0" * 400 + "}"])
def test_an_integer_too_large_for_a_float_is_a_recipe_error(text: str) -> None:
    """JSON integers have no size limit; one of 400 digits is out of range, said in one short line (it once
    overflowed converting to float, a traceback)."""
    with pytest.raises(RecipeError, match=r"out of range|newer than") as caught:
        Recipe.from_json(text)
    assert len(str(caught.value)) < 200


def test_a_stage_parameter_too_large_for_a_float_is_a_recipe_error(sample_dng: Path) -> None:
    import engine

    recipe = Recipe.from_json('{"stages": {"detail": {"params": {"amount": 1' + "0" * 400 + "}}}}")
    with pytest.raises(RecipeError, match="'amount' = 1000.* is out of range") as caught:
        engine.render(engine.open(sample_dng), recipe, preview=64)
    assert len(str(caught.value)) < 200
