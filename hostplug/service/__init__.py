"""The resident render service: ``hostplug serve``, one per user, on a Unix socket in the user's runtime folder.

It keeps the engine, its models and the last few opened raws in memory, so a render through it pays neither
Python's start-up nor torch's, numba's or LibRaw's. Clients (``hostplug render``, ``hostplug open``, the GIMP
plug-in through them) send one length-prefixed JSON request per connection and get one JSON response; the
service writes the output file itself, atomically, so no pixels cross the socket, except a preview's (the
``preview`` request: an editor's live dialog; the pixels follow the JSON answer).

- :mod:`hostplug.service.protocol`: where the socket lives, the framing, the peer-credential check (stdlib only).
- :mod:`hostplug.service.client`: finding, starting and asking the service (stdlib only: a client stays light).
- :mod:`hostplug.service.server`: the service itself (``python -m hostplug.service`` or ``hostplug serve``).
- :mod:`hostplug.service.preview_pipe`: previews over a pipe, for an editor whose Python cannot import hostplug.

Nothing here is imported by the engine; everything works without the service (the commands fall back to
rendering in their own process when it cannot be reached or started).
"""
