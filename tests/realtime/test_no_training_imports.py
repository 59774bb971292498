"""The live path never imports training code (issue 15).

Importing the live modules must not load ``rhythmicnet.offline.train_*`` nor ``rhythmicnet.offline.training``
(they pull in the dataset generators, mir_eval and the optimisers, and tie the live path to them). Checked
in a fresh interpreter, so what other tests imported does not count; and, as the live modules import much
of their code inside functions, also on every ``rhythmicnet`` module the live modules reach through any
import statement, eager or inside a function (read from the source, not run).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys

LIVE_MODULES = (
    "rhythmicnet.realtime.engine",
    "rhythmicnet.realtime.live",
    "rhythmicnet.realtime.video_input",
    "rhythmicnet.models.live_rhythm",
)


def _is_training(name: str) -> bool:
    return name == "rhythmicnet.offline.training" or name.startswith("rhythmicnet.offline.train_")


def test_importing_the_live_modules_loads_no_training_code():
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(LIVE_MODULES)!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(LIVE_MODULES) <= set(loaded)
    assert [m for m in loaded if _is_training(m)] == []


def _rhythmicnet_imports(module: str) -> set[str]:
    """Every ``rhythmicnet`` module named by an import statement anywhere in ``module``'s source."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), spec.origin)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("rhythmicnet"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("rhythmicnet"):
            assert node.module is not None
            found.add(node.module)
            for a in node.names:  # ``from rhythmicnet.offline import train_beat`` names a module
                sub = f"{node.module}.{a.name}"
                if importlib.util.find_spec(node.module).submodule_search_locations and importlib.util.find_spec(sub):
                    found.add(sub)
    return found


def test_no_import_statement_reachable_from_the_live_modules_names_training_code():
    parents: dict[str, str | None] = dict.fromkeys(LIVE_MODULES)
    todo = list(LIVE_MODULES)
    while todo:
        module = todo.pop()
        for dep in sorted(_rhythmicnet_imports(module)):
            if dep not in parents:
                parents[dep] = module
                todo.append(dep)

    def chain(m: str) -> str:
        path = [m]
        while (p := parents[path[-1]]) is not None:
            path.append(p)
        return " <- ".join(path)

    assert [chain(m) for m in parents if _is_training(m)] == []
