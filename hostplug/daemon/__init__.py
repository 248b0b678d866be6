"""``hostplug watch``: a resident daemon that renders raws dropped into hot folders, never losing or doubling one.

Modules, one concept each: :mod:`.config` (the TOML configuration), :mod:`.validate` (start-up checks),
:mod:`.templates` (output names), :mod:`.journal` (SQLite state), :mod:`.scanner` (finding complete files),
:mod:`.recipes` (which look a file gets), :mod:`.job` (rendering one file), :mod:`.workers` (the process pool),
:mod:`.originals` (archive and ``_failed/``), :mod:`.progress` (throughput), :mod:`.logs`, :mod:`.systemd`
(sd_notify) and :mod:`.daemon` (the loop that ties them together).
"""

from __future__ import annotations
