"""Follow the README as a new user would: a clean copy, a fresh virtual environment, the install
command, every command's --help, the test command's collection, and the demo (under a minute,
touching nothing of the user's).

The virtual environment sees the system's site-packages, so the dependencies are already
there and nothing is downloaded; the install itself is the README's command, verbatim.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main

from supportersync.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
INSTALL = "python -m pip install -e '.[test]'"
DEMO = f"{INSTALL} && supportersync demo"
TESTS = f"{INSTALL} && python -m pytest"

pytestmark = pytest.mark.slow


@dataclass
class Fresh:
    clone: Path
    venv: Path
    home: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTERSYNC_") and k != "VIRTUAL_ENV"}
        if "SUPPORTERSYNC_TEST_POSTGRES_URL" in os.environ:
            env["SUPPORTERSYNC_TEST_POSTGRES_URL"] = os.environ["SUPPORTERSYNC_TEST_POSTGRES_URL"]
        env.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / ".config"),
                   XDG_DATA_HOME=str(self.home / ".local" / "share"), VIRTUAL_ENV=str(self.venv),
                   PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}", PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        env.update(extra)
        return env

    def sh(self, command: str, *, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess[str]:
        """A README command line, run by the shell inside the clone with the venv activated."""
        return subprocess.run(command, shell=True, cwd=self.clone, env=self.env(**extra), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _copy_clone(target: Path) -> None:
    """What a fresh clone holds: the files git tracks, plus new ones not ignored (work in progress)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = []
    if not listed or listed == [""]:
        shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__",
                                                                     ".pytest_cache", ".hypothesis", "*.db"))
        return
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    base = tmp_path_factory.mktemp("newcomer")
    clone, home = base / "supportersync", base / "home"
    clone.mkdir()
    home.mkdir()
    _copy_clone(clone)
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   capture_output=True, timeout=300)
    world = Fresh(clone, venv, home)
    installed = world.sh(INSTALL)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    yield world


def test_the_readme_gives_these_exact_commands() -> None:
    assert DEMO in README
    assert TESTS in README
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()


def test_the_install_puts_this_clone_on_the_path(fresh: Fresh) -> None:
    where = fresh.sh("command -v supportersync && python -c 'import supportersync; print(supportersync.__file__)'")
    assert where.returncode == 0, where.stderr
    script, module = where.stdout.split()
    assert Path(script) == fresh.bin / "supportersync"
    assert Path(module) == fresh.clone / "supportersync" / "__init__.py"


def _command_paths() -> list[list[str]]:
    paths: list[list[str]] = [[]]

    def walk(command: object, prefix: list[str]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            paths.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


HELP_ALL = """
import json, sys
from typer.testing import CliRunner
from supportersync.cli import app
runner = CliRunner()
answers = {}
for path in json.loads(sys.argv[1]):
    result = runner.invoke(app, [*path, "--help"], prog_name="supportersync")
    answers[" ".join(path)] = [result.exit_code, result.output]
print(json.dumps(answers))
"""


def test_every_command_has_help(fresh: Fresh) -> None:
    paths = _command_paths()
    assert {"run", "jobs", "db", "status", "cron", "init", "config", "demo", "plugins"} <= {p[0] for p in paths if p}
    # The console script itself, then every command of the installed package in one process
    # (a process per command would spend its time importing).
    top = fresh.sh("supportersync --help")
    assert top.returncode == 0 and top.stdout.startswith("Usage: supportersync"), top.stderr
    done = subprocess.run([str(fresh.bin / "python"), "-c", HELP_ALL, json.dumps(paths)], cwd=fresh.home,
                          env=fresh.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert len(answers) == len(paths)
    for path, (code, output) in answers.items():
        assert code == 0, (path, output)
        assert output.startswith(f"Usage: supportersync {path}".rstrip()), (path, output[:200])


def test_the_test_command_collects(fresh: Fresh) -> None:
    collected = fresh.sh("python -m pytest --collect-only -q", timeout=300)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    match = re.search(r"(\d+) tests? collected", collected.stdout)
    assert match and int(match.group(1)) > 100, collected.stdout[-500:]
    assert "tests/ops/test_readme.py::test_the_demo_runs_on_a_fresh_install" in collected.stdout


def test_the_demo_runs_on_a_fresh_install(fresh: Fresh, tmp_path: Path) -> None:
    # A user's real settings, which the demo must neither read nor change.
    real_config = fresh.home / ".config" / "supportersync" / "config.toml"
    real_config.parent.mkdir(parents=True)
    real_config.write_text("this is not TOML, and the demo must not read it\n")
    real_db = tmp_path / "real.db"
    # The minute it should take is measured (docs/performance.md), not asserted: timings vary by machine.
    demo = fresh.sh("supportersync demo", timeout=300, SUPPORTERSYNC_DATABASE_URL=f"sqlite:///{real_db}",
                    SUPPORTERSYNC_CLASSY_CLIENT_SECRET="users-real-secret")
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]

    out = demo.stdout
    match = re.search(r"The demo database is (\S+)", out)
    assert match, out[-2000:]
    database = Path(match.group(1))
    assert database.is_file() and database.name == "demo.db"
    assert f"Demo folder: {database.parent}" in out
    for step in ("$ supportersync db upgrade", "$ supportersync config check", "$ supportersync run all --full",
                 "$ supportersync run all ", "$ supportersync jobs list", "$ supportersync status --max-age 1h"):
        assert step in out, step
    assert "all checks passed" in out
    assert "What the incremental run changed in the Mailchimp audience" in out
    assert "ada.lovelace@mail.example: added as subscribed" in out
    assert "subscribed -> unsubscribed" in out
    assert "is still unsubscribed; nobody who unsubscribed was subscribed again." in out
    assert "users-real-secret" not in out + demo.stderr

    assert real_config.read_text() == "this is not TOML, and the demo must not read it\n"
    assert not real_db.exists()
    assert not (fresh.home / ".local" / "share" / "supportersync").exists()
    shutil.rmtree(database.parent)
