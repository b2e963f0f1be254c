"""The layout the project promises: protocol rules free of sockets, threads and clocks; the user's
scripts alone at the top, each a thin entry point."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "gossipnet" / "protocol"
SCRIPTS = {"seed.py", "peer.py", "runner.py", "PeerRunner.py", "visualizer.py", "grader.py"}
# What a rule may not touch: the network, threads, the clock, or the node code that carries bytes to it.
FORBIDDEN = {"socket", "selectors", "select", "threading", "time", "gossipnet.node"}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def forbidden(names: set[str]) -> set[str]:
    return {name for name in names for bad in FORBIDDEN if name == bad or name.startswith(bad + ".")}


def test_no_protocol_module_imports_sockets_threads_the_clock_or_the_node():
    modules = sorted(PROTOCOL.glob("*.py"))
    rules = [path for path in modules if path.name != "__init__.py"]
    assert len(rules) >= 8, modules  # wire, auth, the ML, liveness, topology, degree pool, peer table, ...
    assert {"deadnode.py", "repairplan.py", "peertable.py", "wire.py"} <= {path.name for path in rules}
    offenders = {path.name: forbidden(imports(path)) for path in rules}
    assert not {name: bad for name, bad in offenders.items() if bad}


def test_importing_every_rule_loads_no_socket_thread_or_node_module():
    # Also what they import in turn (gossipnet.config, ...): checked in a fresh interpreter.
    names = [f"gossipnet.protocol.{path.stem}" for path in sorted(PROTOCOL.glob("*.py")) if path.stem != "__init__"]
    code = ("import sys\n" + "".join(f"import {name}\n" for name in names)
            + "print(sorted(m for m in sys.modules if m in ('socket', 'threading', 'selectors') "
              "or m.startswith('gossipnet.node')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_top_level_holds_the_users_scripts_and_no_other_python_file():
    assert {path.name for path in ROOT.glob("*.py")} == SCRIPTS


def test_each_script_is_a_thin_entry_point():
    for name in sorted(SCRIPTS):
        tree = ast.parse((ROOT / name).read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{name} has no usage docstring"
        classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
        assert not classes, f"{name} defines {classes}"
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert "main" in functions, name
        scripts = {module.removesuffix(".py") for module in SCRIPTS}
        assert not {module.split(".")[0] for module in imports(ROOT / name)} & scripts, f"{name} imports a script"
