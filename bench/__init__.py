"""vrex's benchmarks (``python main.py bench signal|render|link``).

They live outside the library packages so that measuring code, reference
methods (NeuroKit2) and recorded data paths never ship inside ``biofeedback``
or ``environments``; each benchmark imports the library like any other user.
Every benchmark prints a table and writes JSON (``--json FILE``, default under
``bench-results/``).
"""
