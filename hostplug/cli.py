"""The ``hostplug`` command: it only registers the commands of :mod:`hostplug.commands`.

Every error is one line on stderr (``hostplug: error: ...``) and a non-zero exit; ``--json`` prints results
for scripts on stdout.
"""

from __future__ import annotations

import atexit
import gc
from typing import Any

import click

from engine.errors import HostplugError
from hostplug.commands import cluster, integrate, models, open, render, serve, sidecar, watch
from hostplug.commands.common import fail
from hostplug.memory import keep_freed_memory, no_huge_page_advice

no_huge_page_advice()  # before anything imports numpy (hostplug.cli and the commands' modules do not)


class HostplugGroup(click.Group):
    """A group that turns engine errors raised anywhere in a command into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        # The last thing before the interpreter tears down: freeze every object, so that its shutdown skips the
        # garbage collections over all of numba's and scipy's objects (0.3-0.8 s after a render) and only frees
        # memory, which the exiting process gives back anyway. Registered first, it runs after every other handler.
        atexit.register(gc.freeze)
        keep_freed_memory()
        try:
            return super().invoke(ctx)
        except HostplugError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)


@click.group(cls=HostplugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hostplug")
def main() -> None:
    """Render camera raws through hostplug's modular neural ISP."""


models.register_subcommands()
for command in (render.render, render.info, sidecar.edit, sidecar.show, sidecar.presets, sidecar.rerender,
                watch.watch, watch.queue, open.open_command, open.thumbnail, integrate.integrate, models.train,
                models.evaluate, serve.serve, cluster.cluster):
    main.add_command(command)
