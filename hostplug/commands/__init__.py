"""The ``hostplug`` commands, one module per group; :mod:`hostplug.cli` names them in ``COMMANDS``.

``render`` (render, info), ``sidecar`` (edit, show, presets, rerender), ``watch`` (watch, queue), ``open`` (open,
thumbnail), ``integrate`` (integrate gimp|darktable) and ``models`` (the train and eval groups, whose
subcommands live in ``models_raw`` and ``models_look``). What they share is in :mod:`hostplug.commands.common`.
Each command parses its options and calls the library once (:func:`engine.render_file`,
:func:`engine.rerender_file`, :func:`hostplug.handoff.open_file`, the daemon); heavy modules (torch, numba,
OpenCV, rawpy) are imported inside the commands, so ``hostplug --help`` stays fast.
"""
