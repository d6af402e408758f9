"""The benchmarks (``gate-reader bench WHAT``; their options are in reader.cli.bench) and
the statistics they share. Timing claims live here, printed, never in timed asserts."""
