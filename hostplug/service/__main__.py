"""``python -m hostplug.service [--idle-timeout S]``: run the render service (what a client starts on demand)."""

from hostplug.memory import no_huge_page_advice

no_huge_page_advice()  # before numpy loads: a client that is not the hostplug command (GIMP's preview) may start us

from hostplug.service.server import main  # noqa: E402

raise SystemExit(main())
