"""``gate-reader run``: the gate daemon. ``daemon`` (build, start, run, stop), ``pipeline``
(the one decision worker), ``sources`` (the credential sources and their supervision),
``control`` (the local control socket), ``health`` (the live health in the store),
``notify`` (sd_notify)."""
