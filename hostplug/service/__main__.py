"""``python -m hostplug.service [--idle-timeout S]``: run the render service (what a client starts on demand)."""

from hostplug.service.server import main

raise SystemExit(main())
