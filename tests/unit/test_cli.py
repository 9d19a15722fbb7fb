"""The command line as a user types it: options in either place, --json shapes, completion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.cli import _parser, _subparsers
from labctl.core.loader import load_topology
from labctl.state import LabState, StateStore

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "topologies" / "seed.yaml"
BAD = ROOT / "tests" / "unit" / "golden" / "bad-references.yaml"
LABCTL = Path(sys.executable).with_name("labctl")


def labctl(
    *argv: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LABCTL), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_global_options_are_accepted_after_the_subcommand() -> None:
    parser = _parser()
    assert parser.parse_args(["validate", "f.yaml", "-v"]).verbose is True
    assert parser.parse_args(["-v", "validate", "f.yaml"]).verbose is True
    assert parser.parse_args(["validate", "f.yaml"]).verbose is False
    assert parser.parse_args(["image", "build", "--verbose"]).verbose is True
    for child in _subparsers(parser):
        assert any("-v" in a.option_strings for a in child._actions), child.prog
    done = labctl("validate", "topologies/seed.yaml", "-v")
    assert done.returncode == 0, done.stderr


def test_exec_takes_labctl_options_before_the_commands_double_dash() -> None:
    parser = _parser()
    # argparse leaves what follows NODE to the command; cmd_exec takes -v back.
    assert parser.parse_args(["exec", "lab", "node", "ls", "-la"]).cmd == ["ls", "-la"]
    done = labctl("exec", "no-such-lab", "node", "--frob", "--", "true")
    assert done.returncode == 2 and "unknown option '--frob'" in done.stderr


def test_validate_checks_a_lab_and_every_cell_without_running(tmp_path: Path) -> None:
    done = labctl("validate", "labs/veth-checksum")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "labs/veth-checksum/lab.yaml: ok (lab veth-checksum, topology seed.yaml: 12 cells, "
        "4 switch choices x 3 offload settings)"
    )
    cells = json.loads(labctl("validate", "labs/veth-checksum", "--json").stdout)["cells"]
    assert {"cell": "ovs-dpdk-server-only", "expectation": True} in cells
    lab = (ROOT / "labs" / "veth-checksum" / "lab.yaml").read_text()
    lab = lab.replace("../../topologies/seed.yaml", str(SEED))
    bad = tmp_path / "lab.yaml"
    bad.write_text(lab.replace("      client: {tx: off, rx: off}", "      clinet: {tx: off}"))
    done = labctl("validate", str(bad))
    assert done.returncode == 2
    assert f"{bad}:23:7: matrix.offload.server-only.clinet: 'clinet' is neither" in done.stderr
    problems = json.loads(labctl("validate", str(bad), "--json").stdout)["problems"]
    assert [(p["line"], p["column"]) for p in problems] == [(23, 7)]
    refused = labctl("validate", "labs/veth-checksum", "--switch", "ovs-dpdk")
    assert refused.returncode == 2 and "labctl matrix LAB --switch KIND" in refused.stderr


def test_validate_json_shapes() -> None:
    ok = labctl("validate", "topologies/seed.yaml", "--json")
    assert ok.returncode == 0
    assert json.loads(ok.stdout) == {
        "file": "topologies/seed.yaml",
        "ok": True,
        "lab": "seed",
        "switch": "linux-bridge",
        "runtime": "docker",
        "nodes": ["client", "server"],
        "links": 2,
        "taps": ["server-eth0", "server-host", "client-port"],
    }
    bad = labctl("validate", BAD.name, "--json", cwd=BAD.parent)
    assert bad.returncode == 2
    report = json.loads(bad.stdout)
    assert report["ok"] is False and report["file"] == BAD.name
    expected = (BAD.with_suffix(".expected")).read_text().splitlines()
    assert [
        f"{p['file']}:{p['line']}:{p['column']}: {p['path']}: {p['message']}"
        if p["path"]
        else f"{p['file']}:{p['line']}:{p['column']}: {p['message']}"
        for p in report["problems"]
    ] == [line for line in expected if line]


def test_every_command_that_prints_a_result_has_json() -> None:
    # JSON already, a script, a session, a drawing in the format asked for, a group
    without = {"schema", "completion", "exec", "graph", "image", "report"}
    parser = _parser()
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, child in action.choices.items():
            if name in without:
                continue
            assert any("--json" in a.option_strings for a in child._actions), name
    image = _parser().parse_args(["image", "build", "--json"])
    assert image.json is True


# -- completion -----------------------------------------------------------------------


@pytest.fixture
def one_lab_up(tmp_path: Path) -> dict[str, str]:
    """A state directory with one lab recorded as up (as `labctl up` writes it)."""
    topology, _ = load_topology(SEED)
    store = StateStore(tmp_path / "state")
    store.save(
        LabState(
            "cl-complete",
            str(SEED),
            topology.model_dump(mode="json"),
            topology.switch.kind.value if topology.switch else None,
            status="up",
        )
    )
    return {"LABCTL_STATE_DIR": str(store.root)}


def bash_complete(line: str, env: dict[str, str]) -> list[str]:
    """Completions for `line` (cursor at its end) as bash computes them with our script."""
    script = labctl("completion", "bash").stdout
    words = line.split(" ")
    program = f"""
{script}
COMP_LINE={shlex_quote(line)}
COMP_POINT=${{#COMP_LINE}}
COMP_WORDS=({" ".join(shlex_quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
_python_argcomplete labctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    bash = shutil.which("bash")
    assert bash is not None
    path = f"{LABCTL.parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **env, "PATH": path},
    )
    assert done.returncode == 0, done.stderr
    return sorted(w.strip() for w in done.stdout.splitlines() if w.strip())


def words(completions: list[str]) -> list[str]:
    return [c for c in completions if not c.startswith("-")]


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def test_bash_completes_commands_options_files_labs_and_nodes(
    one_lab_up: dict[str, str],
) -> None:
    assert bash_complete("labctl va", one_lab_up) == ["validate"]
    assert {"exec", "capture", "matrix", "doctor"} <= set(bash_complete("labctl ", one_lab_up))
    assert bash_complete("labctl doctor --sw", one_lab_up) == ["--switch"]
    assert bash_complete("labctl up topologies/seed.", one_lab_up) == ["topologies/seed.yaml"]
    assert words(bash_complete("labctl exec ", one_lab_up)) == ["cl-complete"]
    assert words(bash_complete("labctl exec cl-complete ", one_lab_up)) == ["client", "server"]
    assert bash_complete("labctl exec cl-complete s", one_lab_up) == ["server"]
    assert bash_complete("labctl down c", one_lab_up) == ["cl-complete"]
    # capture: taps, node interfaces, switch ports (bash breaks words at ':')
    assert bash_complete("labctl capture sw", one_lab_up) == ["switch:cli", "switch:srv"]
    assert bash_complete("labctl capture server:", one_lab_up) == ["eth0", "lo"]
    assert "client-port" in bash_complete("labctl capture --lab cl-complete ", one_lab_up)


ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "autoload -U compinit; compinit -u -D"
zpty -w z 'eval "$(labctl completion zsh)"'
# Every candidate the completion system is given, one per line, into $HITS.
zpty -w z 'compadd () { local -a h; builtin compadd -O h "$@"; print -rl -- $h >> $HITS; }'
zpty -w -n z "$LINE"$'\t'
# zle skips completing while keys are pending, so nothing is typed ahead: wait for the
# candidates (a labctl process answers them), let the last ones land, then end.
local _i
for _i in {1..300}; do [[ -s $HITS ]] && break; sleep 0.1; done
sleep 0.3
zpty -w z $'\x15touch $HITS.done'
for _i in {1..100}; do [[ -e $HITS.done ]] && break; sleep 0.1; done
zpty -d z
"""


def zsh_complete(line: str, env: dict[str, str], tmp_path: Path) -> list[str]:
    """Completions for `line` as an interactive zsh computes them with our script (TAB)."""
    zsh = shutil.which("zsh")
    assert zsh is not None, "zsh is missing: scripts/provision.sh installs it"
    hits = tmp_path / "zsh-hits"
    hits.unlink(missing_ok=True)
    Path(f"{hits}.done").unlink(missing_ok=True)
    done = subprocess.run(
        [zsh, "-f", "-c", ZSH_DRIVER],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={
            **os.environ,
            **env,
            "PATH": f"{LABCTL.parent}:{os.environ['PATH']}",
            "HITS": str(hits),
            "LINE": line,
        },
    )
    assert Path(f"{hits}.done").exists(), done.stdout + done.stderr
    return sorted(set(hits.read_text().split())) if hits.exists() else []


def test_real_zsh_completes_commands_options_files_labs_and_nodes(
    one_lab_up: dict[str, str], tmp_path: Path
) -> None:
    assert zsh_complete("labctl va", one_lab_up, tmp_path) == ["validate"]
    commands = set(zsh_complete("labctl ", one_lab_up, tmp_path))
    assert {"exec", "capture", "matrix", "doctor"} <= commands
    assert zsh_complete("labctl doctor --sw", one_lab_up, tmp_path) == ["--switch"]
    assert zsh_complete("labctl up topologies/seed.", one_lab_up, tmp_path) == [
        "topologies/seed.yaml"
    ]
    assert words(zsh_complete("labctl exec ", one_lab_up, tmp_path)) == ["cl-complete"]
    assert words(zsh_complete("labctl exec cl-complete ", one_lab_up, tmp_path)) == [
        "client",
        "server",
    ]
    assert zsh_complete("labctl down c", one_lab_up, tmp_path) == ["cl-complete"]
    assert zsh_complete("labctl capture server:", one_lab_up, tmp_path) == [
        "server:eth0",
        "server:lo",
    ]


def test_zsh_protocol_completes_nodes(one_lab_up: dict[str, str]) -> None:
    """What the zsh script asks labctl (zsh itself is not needed to check labctl's side)."""
    script = labctl("completion", "zsh").stdout
    assert "compdef _python_argcomplete labctl" in script
    line = "labctl exec cl-complete "
    read_end, write_end = os.pipe()
    done = subprocess.run(
        [str(LABCTL)],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
        pass_fds=(write_end,),
        env={
            **os.environ,
            **one_lab_up,
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_SHELL": "zsh",
            "_ARGCOMPLETE_STDOUT_FILENAME": f"/proc/self/fd/{write_end}",
        },
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        out = reader.read().decode()
    assert done.returncode == 0, done.stderr
    # zsh gets "name:description" entries separated by \v
    names = sorted(entry.split(":")[0] for entry in out.split("\v") if entry)
    assert words(names) == ["client", "server"]


def test_readme_documents_one_json_shape_per_command_with_json() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### JSON output", 1)[1].split("###", 1)[0]
    documented = {
        line.split("|")[1].strip().strip("`")
        for line in section.splitlines()
        if line.startswith("| `")
    }
    with_json = set()
    for action in _parser()._subparsers._group_actions:  # type: ignore[union-attr]
        for child in action.choices.values():
            for grandchild in _subparsers(child) or [child]:
                if any("--json" in a.option_strings for a in grandchild._actions):
                    with_json.add(grandchild.prog.removeprefix("labctl "))
    assert documented == with_json
    # The validate row lists exactly the keys validate prints.
    ok = json.loads(labctl("validate", "topologies/seed.yaml", "--json").stdout)
    row = next(line for line in section.splitlines() if line.startswith("| `validate`"))
    assert "{" + ", ".join(f'"{k}"' for k in ok) in row.replace(": true", "").replace(
        ": [names]", ""
    ).replace(": n", "")


def test_readme_distributions_have_the_python_that_labctl_requires() -> None:
    import tomllib

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(p) for p in requires.removeprefix(">=").split("."))
    # The Python 3 each distribution ships.
    python_of = {"Debian 12": (3, 11), "Ubuntu 22.04": (3, 10), "Ubuntu 24.04": (3, 12)}
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1][:400]
    promised = [d for d in python_of if f"fresh {d}" in quick_start or f"or {d}" in quick_start]
    assert promised, quick_start
    assert all(python_of[d] >= minimum for d in promised), promised
