"""The command line and the experiments of ledkde (``ledkde sample``, ``ledkde experiment``):
data sets that install offline, the runs and their reports, the pictures. Not needed by
the library itself; the engine's API is the ``ledkde`` package."""
