"""What a cold render loads: no torch below the learned denoiser's ISO; numba in a thread while the raw decodes,
with every kernel it calls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_default_render_below_the_learned_denoisers_iso_never_imports_torch(tmp_path: Path,
                                                                            sample_dng: Path) -> None:
    """The sample reads as ISO 200, below where the default denoiser ("auto") runs the network."""
    script = (
        "import sys, engine\n"
        "assert 'torch' not in sys.modules, 'import engine'\n"
        "from hostplug.cli import main\n"
        "try:\n"
        f"    main(['render', {str(sample_dng)!r}, '-o', {str(tmp_path / 'out.tif')!r}, '--no-service'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    assert _run(script) == "[]"
    assert (tmp_path / "out.tif").is_file()


def test_the_output_module_leaves_numba_to_the_kernels_thread() -> None:
    """render_files imports the pipeline only once the raw is open, so numba loads in the thread meanwhile."""
    script = ("import sys, engine.output.export\n"
              "print(sorted(m for m in ('numba', 'engine.kernels', 'engine.pipeline', 'torch') if m in sys.modules))")
    assert _run(script) == "[]"


def test_loading_the_kernels_covers_every_kernel_a_render_calls(sample_dng: Path) -> None:
    script = (
        "import numba, engine\n"
        "from engine import kernels\n"
        "def loaded():\n"
        "    return {name: list(k.signatures) for name, k in vars(kernels).items()\n"
        "            if isinstance(k, numba.core.registry.CPUDispatcher)}\n"
        "kernels.load_compiled()\n"
        "before = loaded()\n"
        f"engine.render(engine.open({str(sample_dng)!r}))\n"
        "after = loaded()\n"
        "import sys\n"
        "print(sorted(name for name in after if after[name] != before[name]), "
        "sorted(name for name in before if before[name]), 'scipy.linalg' in sys.modules)\n"
    )
    # scipy.linalg (0.3-0.8 s, numba asks for it only to know whether BLAS is there) stays out
    assert _run(script) == ("[] ['_add_per_position', '_bgu_accumulate', '_bgu_apply', '_channel_norm', "
                            "'_compress_gamut', '_demosaic_mhc', '_denoise_opponent', '_normalize_mosaic', "
                            "'_position_means'] False")


def test_compiling_in_the_kernels_thread_leaves_the_main_threads_stderr_alone() -> None:
    """numba formats messages while it compiles; with colorama installed it did so inside colorama's init() and
    deinit(), which put back whatever ``sys.stderr`` was when they began. A host that had since captured stderr
    (CliRunner, an embedding program) lost the command's error line. Formatting from a thread, as compiling the
    kernels in their thread does, must leave the main thread's stream in place."""
    script = (
        "import io, sys, threading, engine.kernels\n"
        "from numba.core.errors import termcolor\n"
        "def format_messages():\n"
        "    for _ in range(300):\n"
        "        termcolor().errmsg('message')\n"
        "thread = threading.Thread(target=format_messages)\n"
        "thread.start()\n"
        "lost = 0\n"
        "while thread.is_alive():\n"
        "    mine = io.StringIO()\n"
        "    sys.stderr = mine\n"
        "    for _ in range(1000):\n"
        "        pass\n"
        "    lost += sys.stderr is not mine\n"
        "sys.stderr = sys.__stderr__\n"
        "print(lost)\n"
    )
    assert _run(script) == "0"


def test_a_daemon_worker_sizes_torch_without_importing_it() -> None:
    """limit_threads leaves torch out (a warm-up render does without it), and torch takes the size when imported."""
    script = ("import sys\n"
              "from hostplug.daemon.workers import limit_threads, warm_up\n"
              "limit_threads(1)\n"
              "warm_up()\n"
              "imported = 'torch' in sys.modules\n"
              "import torch\n"
              "print(imported, torch.get_num_threads())")
    assert _run(script) == "False 1"


def test_the_command_asks_numpy_not_to_advise_huge_pages() -> None:
    """hostplug.cli sets NUMPY_MADVISE_HUGEPAGE=0 before numpy loads (a cold render waited on memory compaction
    with the advice), and leaves a value the user set alone."""
    script = ("import os, sys\nos.environ.pop('NUMPY_MADVISE_HUGEPAGE', None)\nimport hostplug.cli\n"
              "assert 'numpy' not in sys.modules, 'hostplug.cli imported numpy before giving its advice'\n"
              "import numpy\nprint(numpy._core.multiarray._get_madvise_hugepage())")
    assert _run(script) == "False"
    kept = ("import os\nos.environ['NUMPY_MADVISE_HUGEPAGE'] = '1'\nimport hostplug.cli\n"
            "print(os.environ['NUMPY_MADVISE_HUGEPAGE'])")
    assert _run(kept) == "1"


def test_the_service_gives_the_same_advice_when_a_client_starts_it() -> None:
    """GIMP's preview helper starts ``python -m hostplug.service`` without the hostplug command's environment."""
    script = ("import os, runpy, sys\nos.environ.pop('NUMPY_MADVISE_HUGEPAGE', None)\n"
              "sys.argv = ['hostplug.service', '--help']\n"
              "try:\n    runpy.run_module('hostplug.service', run_name='__main__')\nexcept SystemExit:\n    pass\n"
              "print(os.environ.get('NUMPY_MADVISE_HUGEPAGE'))")
    assert _run(script) == "0"


def test_a_command_loads_only_its_own_module(sample_dng: Path) -> None:
    """``hostplug info`` does not wait for the watch daemon's, the cluster's or the model commands' modules."""
    loaded = "sorted(m for m in sys.modules if m.startswith(('hostplug.commands.', 'hostplug.daemon')))"
    assert _run(_info_then(sample_dng, loaded)) == "['hostplug.commands.common', 'hostplug.commands.info']"


def test_info_of_a_dng_without_xmp_loads_no_xmp_parser(sample_dng: Path) -> None:
    """A DNG's own XMP is looked for in its first directory (tifffile, which reading the DNG loads anyway); the
    XMP parser loads only for a DNG that holds a packet, or a raw with a sidecar."""
    loaded = "sorted(m for m in ('lxml', 'defusedxml', 'engine.xmp.sidecar') if m in sys.modules)"
    assert _run(_info_then(sample_dng, loaded)) == "[]"


def _info_then(raw: Path, expression: str) -> str:
    """A script that runs ``hostplug info RAW`` in-process, then prints ``expression``."""
    return ("import sys\nfrom hostplug.cli import main\ntry:\n"
            f"    main(['info', {str(raw)!r}])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            f"print({expression})\n")


def test_every_named_command_is_that_command() -> None:
    """``hostplug.cli.COMMANDS`` points each name at the click command of that name."""
    import click

    from hostplug.cli import COMMANDS, main

    context = click.Context(main)
    assert {name: main.get_command(context, name).name for name in COMMANDS} == {name: name for name in COMMANDS}


def test_a_full_disk_under_the_kernel_cache_does_not_stop_a_render() -> None:
    # numba saves compiled kernels under ~/.cache: a full home disk made every render fail with its traceback,
    # while the output's disk had room; the code is only a saving of time
    import errno

    from numba.core import caching

    from engine import kernels

    def full(self: object, sig: object, data: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    kernels._save_if_there_is_room(full)(object(), None, None)  # gives up quietly
    assert caching.Cache.save_overload.__name__ == "save_overload"
    assert caching.Cache.save_overload.__qualname__.startswith("_save_if_there_is_room")
