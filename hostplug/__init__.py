"""What hosts talk to: the ``hostplug`` command, the watch-folder daemon and the editor hand-off."""
