"""invoke tasks, collection `lab`: `inv lab.up --switch=ovs-dpdk`, `inv lab.run`, ...

Each task calls the labctl command line in-process, so the output, the exit
codes and the error messages are exactly those of `labctl`.
"""

from __future__ import annotations

import sys

from invoke import Collection, Exit, task

SEED = "topologies/seed.yaml"


def _labctl(*argv: str) -> None:
    from labctl.cli import main

    code = main([a for a in argv if a])
    if code:
        raise Exit(code=code)


@task(
    help={
        "file": f"topology file (default {SEED})",
        "switch": "linux-bridge | ovs-kernel | ovs-userspace | ovs-dpdk (overrides the file)",
        "name": "lab name (overrides the file)",
        "json": "print the lab state as JSON",
    }
)
def up(c, file=SEED, switch="", name="", json=False):
    """Build a lab (default: the seed lab)."""
    _labctl(
        "up",
        file,
        *(["--switch", switch] if switch else []),
        *(["--name", name] if name else []),
        "--json" if json else "",
    )


@task(help={"lab": "lab name (default: the only lab that is up)", "json": "JSON output"})
def run(c, lab="", json=False):
    """Run the lab's HTTP traffic; fails when requests fail."""
    _labctl("run", lab, "--json" if json else "")


@task(help={"lab": "lab name (default: the only lab known)", "all": "every labctl lab"})
def down(c, lab="", all=False):
    """Tear a lab down (idempotent; sweeps leftovers by label)."""
    _labctl("down", lab, "--all" if all else "")


@task(help={"lab": "only this lab", "json": "JSON output"})
def status(c, lab="", json=False):
    """Show what labctl has created on this host."""
    _labctl("status", lab, "--json" if json else "")


@task(help={"file": f"topology file (default {SEED})", "switch": "override the switch kind"})
def validate(c, file=SEED, switch=""):
    """Validate a topology file."""
    _labctl("validate", file, *(["--switch", switch] if switch else []))


@task(help={"force": "rebuild even if the recipe did not change"})
def image(c, force=False):
    """Build the default node image (cached by recipe)."""
    _labctl("image", "build", "--force" if force else "")


@task(help={"switch": "switch kind", "file": f"topology file (default {SEED})"})
def demo(c, switch="linux-bridge", file=SEED):
    """up, run and down in one go; the lab is torn down even when traffic fails."""
    from labctl.cli import main

    code = main(["up", file, "--switch", switch])
    if code:
        raise Exit(code=code)
    try:
        code = main(["run"])
    finally:
        down_code = main(["down"])
    if code or down_code:
        raise Exit(code=code or down_code)


@task(
    help={
        "lab": "lab directory (default labs/veth-checksum)",
        "switch": "only this switch kind",
        "offload": "only this offload setting",
        "ovs_config": "only the OVS cells with this matrix.ovs_config setting",
        "runtime": "docker or netns (overrides the topology)",
        "serial": "one cell at a time",
    }
)
def matrix(
    c, lab="labs/veth-checksum", switch="", offload="", ovs_config="", runtime="", serial=False
):
    """Run a lab over switch kinds x offload settings (x ovs_config settings); writes JSON,
    Markdown, JUnit, HTML."""
    _labctl(
        "matrix",
        lab,
        *(["--switch", switch] if switch else []),
        *(["--offload", offload] if offload else []),
        *(["--ovs-config", ovs_config] if ovs_config else []),
        *(["--runtime", runtime] if runtime else []),
        "--serial" if serial else "",
    )


@task(help={"pytest": "extra pytest arguments, e.g. '-m unit' or '-k seed'"})
def test(c, pytest=""):
    """The checks: ruff (lint, format), mypy (strict, the whole package), then every test."""
    python = sys.executable  # the virtualenv's tools, activated or not
    c.run(f"{python} -m ruff check src tests tasks.py benchmarks", echo=True)
    c.run(f"{python} -m ruff format --check src tests tasks.py benchmarks", echo=True)
    c.run(f"{python} -m mypy", echo=True)
    c.run(f"{python} -m pytest {pytest}".strip(), echo=True, pty=False)


ns = Collection()
ns.add_collection(Collection("lab", up, run, down, status, validate, image, demo, matrix, test))
