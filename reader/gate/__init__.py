"""Services every entry point shares (the commands, the daemon, the diagnostics): the gate's
configuration, clock and cache, what it decides with and how (deciding.Decider), its status
report, the sync and upload jobs. No argparse and no printing here (tests/test_layers.py):
a service returns data or raises, and the caller says it."""
