"""Every command, option and setting the documentation names exists, and every setting is documented."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import typer.main

from supportersync.cli import app
from supportersync.config import _CLASSY_KEYS, _SYNC_KEYS, _TOP_KEYS
from supportersync.config_template import TEMPLATE, env_vars
from supportersync.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
OURS = ["README.md", "crontab.example", "docs/getting-started.md", "docs/configuration.md", "docs/operations.md",
        "docs/architecture.md", "docs/scaling.md", "docs/performance.md"]
PENDING = {"stats": "supportersync.cli.stats"}
"""Command groups promised by the docs whose modules other work is still building."""
TEST_ONLY_ENV = {"SUPPORTERSYNC_TEST_POSTGRES_URL"}
STOP = re.compile(r"^(\||&&|;|>|>>|2>&1|#|\)|`)")
WORD = re.compile(r"^[a-z][a-z-]*$")


def text(name: str) -> str:
    return (ROOT / name).read_text()


def code(name: str) -> str:
    """The parts of a document that are commands: code spans and blocks (crontab: its job lines too)."""
    content = text(name)
    blocks = re.findall(r"```[^\n]*\n(.*?)```", content, flags=re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", content, flags=re.S))
    lines = [line for line in content.splitlines() if not line.startswith("#")] if name == "crontab.example" else []
    return "\n".join([*blocks, *spans, *lines])


def invocations(content: str) -> list[list[str]]:
    """`supportersync WORDS`, cut at shell syntax."""
    found = []
    for match in re.finditer(r"(?<![\w.-])supportersync((?: +[^\s`]+)*)", content):
        words = []
        for word in match.group(1).split():
            if STOP.match(word):
                break
            words.append(word.strip("`,.:)"))
        found.append(words)
    return found


def command_tree() -> object:
    return typer.main.get_command(app)


def check(words: list[str]) -> str | None:
    """None if `supportersync WORDS` names a real command with real options, else the problem."""
    command = command_tree()
    index = 0
    while index < len(words) and getattr(command, "commands", None):
        word = words[index].strip("[]")
        if not WORD.match(word.split("\\|")[0].split("|")[0]):
            return None if index else None  # `supportersync` alone, or followed by prose placeholders
        choices = re.split(r"\\?\|", word)
        subcommands = command.commands  # type: ignore[attr-defined]
        missing = [c for c in choices if c not in subcommands]
        if missing:
            if index == 0 and missing[0] in PENDING:
                return f"pending: {missing[0]}"
            if index == 0 and not re.search(r"[-|\\]", word) and len(words) == 1:
                return None  # prose such as "supportersync keeps ..." (a single lowercase word)
            return f"no command {' '.join(words[:index])} {'|'.join(missing)}".replace("  ", " ")
        command = subcommands[choices[0]]
        index += 1
    options = {opt for param in getattr(command, "params", []) for opt in (*param.opts, *param.secondary_opts)}
    options.add("--help")
    for word in words[index:]:
        for option in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", word):
            if option not in options:
                return f"{' '.join(words[:index])}: no option {option}"
    return None


@pytest.mark.parametrize("name", OURS)
def test_documented_commands_exist(name: str) -> None:
    problems, pending = [], set()
    for words in invocations(code(name)):
        if not words or not WORD.match(words[0].strip("[]`")):
            continue
        problem = check(words)
        if problem and problem.startswith("pending: "):
            pending.add(problem.removeprefix("pending: "))
        elif problem:
            problems.append(f"supportersync {' '.join(words)}: {problem}")
    assert not problems, "\n".join(problems)
    for group in sorted(pending):
        warnings.warn(f"{name} documents `supportersync {group}`, which is not installed yet "
                      f"({PENDING[group]})", stacklevel=1)


def test_the_checker_catches_mistakes() -> None:
    assert check(["jobs", "list", "--limit", "5"]) is None
    assert check(["jobs", "list\\|show\\|prune"]) is None
    assert check(["run", "ENTITY", "[--incremental\\|--full]"]) is None
    assert check(["status", "--max-age", "1h", "--json"]) is None
    assert check(["jobs", "purge"]) == "no command jobs purge"
    assert check(["status", "--max-ages", "1h"]) == "status: no option --max-ages"
    assert check(["run", "all", "--fast"]) == "run: no option --fast"


def test_documented_environment_variables_exist() -> None:
    known = set(env_vars()) | TEST_ONLY_ENV
    for path in [*(ROOT / name for name in OURS), ROOT / "supportersync" / "config_template.py"]:
        for name in set(re.findall(r"SUPPORTERSYNC_[A-Z_]+\*?", path.read_text())):
            if name.endswith(("*", "_")):  # a family (SUPPORTERSYNC_CLASSY_*) or a prefix
                continue
            assert name in known, f"{path.name} names {name}, which no setting reads"


def test_every_setting_is_documented() -> None:
    reference = text("docs/configuration.md")
    for name in [*env_vars(), *TEST_ONLY_ENV]:
        assert f"`{name}`" in reference, name
    for key in [*(_TOP_KEYS - {"classy", "sync", "organizations", "segments", "mailchimp", "plugins"}),
                *_CLASSY_KEYS, *_SYNC_KEYS]:
        assert f"| `{key}` |" in reference, key
    for table in ("[classy]", "[sync]", "[mailchimp]", "[organizations.NAME]", "[segments]", "[plugins.NAME]"):
        assert table in reference, table


def test_every_mailchimp_setting_is_documented() -> None:
    from supportersync.mailchimp.settings import _KEYS, MERGE_FIELDS

    reference = text("docs/configuration.md")
    for key in _KEYS:
        assert f"| `{key}` |" in reference, key
    for field, (tag, _kind, _title) in MERGE_FIELDS.items():
        assert f'`{field} = "{tag}"`' in reference, field


def test_segment_defaults_are_documented() -> None:
    from supportersync.stats.segments import DEFAULT_SEGMENTS_TOML

    reference = text("docs/configuration.md")
    for kind, bands in DEFAULT_SEGMENTS_TOML.items():
        row = next(line for line in reference.splitlines() if line.startswith(f"| `{kind}` |"))
        for band in bands:
            low, high = band.get("min"), band.get("max")
            shown = (f"{band['name']} (none)" if band.get("none") else f"{band['name']} {low}+" if high is None
                     else f"{band['name']} {low}" if low == high else f"{band['name']} {low}-{high}")
            assert shown in row, (kind, shown)


def test_the_template_and_the_reference_agree() -> None:
    reference = text("docs/configuration.md")
    settings = TEMPLATE.split("# Segment bands")[0]  # the segment example's keys are band fields
    for key in re.findall(r"^# ([a-z_]+) = ", settings, flags=re.M):
        assert f"`{key}`" in reference, key


def test_exit_codes_match_the_code() -> None:
    readme = text("README.md")
    operations = text("docs/operations.md")
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \| ", readme, flags=re.M), code
        assert re.search(rf"^\| {int(code)} \| ", operations, flags=re.M), code
    assert len(ExitCode) == 6


def test_links_between_documents_resolve() -> None:
    for path in (ROOT / name for name in OURS):
        for target in re.findall(r"\]\(([^)#\s]+)", path.read_text()):
            if "://" in target:
                continue
            resolved = (path.parent / target).resolve()
            if resolved == (ROOT / "docs" / "plugins.md").resolve() and not resolved.exists():
                warnings.warn("docs/plugins.md is linked but not written yet", stacklevel=1)
                continue
            assert resolved.exists(), f"{path.name} links to {target}"
