"""Benchmarks for labctl: lab cycle time, matrix time, scaling and switch throughput.

Not tests: each module builds real labs (root, Docker, OVS), prints a table and writes
JSON under benchmarks/results/. Run them from the repository root, e.g.

    .venv/bin/python -m benchmarks.cycle --repeat 3
    .venv/bin/python -m benchmarks.run_all

See benchmarks/README.md.
"""
