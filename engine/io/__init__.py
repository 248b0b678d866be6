"""Reading inputs: camera raws through rawpy/LibRaw plus the DNG tags it misses, and display-referred images."""
