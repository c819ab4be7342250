"""The wheel holds every package and its data, and its four console scripts run from it.

The wheel is built from a copy of the sources (the project tree gets no ``build/``), installed
with ``--no-deps --target``, and run by an interpreter that sees only that directory and the
dependencies' site-packages: ``-S`` keeps the development (editable) install out of sight, and
every module is checked to come from the installed copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

SCRIPTS = {
    "dr-edge": "edge.cli",
    "dr-central": "central.cli",
    "dr-sim": "dr_sim.cli",
    "dr-bio": "edge.biometrics.cli",
}
DATA_FILES = (
    "edge/console/static/index.html",
    "edge/console/static/app.js",
    "edge/console/static/style.css",
    "central/dashboard/static/tableau.js",
    "central/dashboard/templates/tableau.html",
    "dr_contracts/py.typed",
)
SOURCES = ("pyproject.toml", "README.md", "edge", "central", "dr_contracts", "firmware-sim/dr_sim")


def _copy_sources(root: Path, dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _run(args: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )


def test_wheel_installs_and_every_script_runs(project_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _copy_sources(project_root, src)
    wheels = tmp_path / "wheels"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
        env=dict(os.environ),
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("dr_station-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in DATA_FILES:
        assert data in names, data
    target = tmp_path / "site"
    installed = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        env=dict(os.environ),
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr
    for script in SCRIPTS:
        assert (target / "bin" / script).exists(), script
    deps = sysconfig.get_paths()["purelib"]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(target), deps]),
        "HOME": str(tmp_path),
    }
    for script, module in SCRIPTS.items():
        code = (
            f"import sys, {module} as m; "
            f"assert m.__file__.startswith({str(target)!r}), m.__file__; "
            f"sys.argv = [{script!r}, '--help']; sys.exit(m.main())"
        )
        done = _run([sys.executable, "-S", "-c", code], env=env, cwd=tmp_path)
        assert done.returncode == 0, f"{script}: {done.stderr}"
        assert f"usage: {script}" in done.stdout
    # The daemon's parts and the console's files load from the installed copy.
    code = (
        "import edge.daemon, central.dashboard.app as d, edge.console.app as c, pathlib; "
        "p = pathlib.Path(c.__file__).parent / 'static' / 'index.html'; "
        "assert p.read_text().strip(); assert d.STATIC_DIR.is_dir(); print(p)"
    )
    done = _run([sys.executable, "-S", "-c", code], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(target))
