"""Installing hostplug into the programs photographers edit in: :mod:`.gimp` (the GIMP 3 plug-in, whose file is
``integrations/gimp/hostplug-raw/hostplug-raw.py``, shipped as ``hostplug/data/hostplug-raw.py``) and :mod:`.darktable`
(a watch configuration for darktable's "copy" export). ``hostplug integrate`` calls them."""
