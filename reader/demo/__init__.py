"""``gate-reader demo``: the real daemon (``gate-reader run`` in a child process) on simulated
hardware, fed by a test centre, with a scenario played against it and narrated as it happens.

``site`` builds the world (the centre and its TUF repository on loopback, the gate's config,
the simulated scanner; the NFC phone and camera video come from ``drivers``), ``process``
runs the daemon and talks to it (control socket, mock pins, journal, log), ``evidence``
reads back what the daemon did in one step, and ``scenario`` plays the steps. The pipeline
benchmark (``reader.bench.pipeline``) runs the same site.
"""
