"""The demo's parts. The whole demo, as a newcomer runs it, is in test_readme.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from supportersync.demo import Demo, Step, _audience_diff, prepare_folder
from supportersync.errors import ConfigError


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.lines.append(f"## {title}")

    def step(self, step: Step, *, show_output: bool) -> None:
        self.lines.append(f"$ {step.command} -> {step.exit_code}")

    def note(self, text: str) -> None:
        self.lines.append(text)


def test_a_folder_holding_a_demo_is_refused(tmp_path: Path, cli) -> None:
    (tmp_path / "demo.db").write_text("")
    with pytest.raises(ConfigError, match="already holds a demo database"):
        prepare_folder(tmp_path)
    result = cli("demo", "--dir", str(tmp_path))
    assert result.exit_code == 2
    assert prepare_folder(tmp_path / "new") == tmp_path / "new"
    made = prepare_folder(None)
    assert made.name.startswith("supportersync-demo-") and made.is_dir()
    made.rmdir()


def test_audience_diff() -> None:
    before = {"a": ("a@x.org", "subscribed", frozenset({"supportersync", "Classy: Small"}), {"GIFTTOTAL": 10}),
              "b": ("b@x.org", "subscribed", frozenset({"supportersync"}), {}),
              "c": ("c@x.org", "subscribed", frozenset(), {})}
    after = {"a": ("a@x.org", "subscribed", frozenset({"supportersync", "Classy: Major"}), {"GIFTTOTAL": 2000}),
             "b": ("b@x.org", "unsubscribed", frozenset({"supportersync"}), {}),
             "c": ("c@x.org", "subscribed", frozenset(), {}),
             "d": ("d@x.org", "subscribed", frozenset({"supportersync"}), {})}
    assert [(c.email, c.changes) for c in _audience_diff(before, after)] == [
        ("a@x.org", ["tagged Classy: Major", "untagged Classy: Small", "GIFTTOTAL 10 -> 2000"]),
        ("b@x.org", ["subscribed -> unsubscribed"]),
        ("d@x.org", ["added as subscribed, tags supportersync"]),
    ]


@pytest.mark.slow
def test_the_demo_works_without_the_mailchimp_plugin(tmp_path: Path, isolated_env: Path) -> None:
    recorder = Recorder()
    demo = Demo(tmp_path / "demo", recorder, commands={"stats"}, mailchimp=False,
                sizes={"supporters": 60, "transactions": 240, "recurring_plans": 6, "campaigns": 3})
    (tmp_path / "demo").mkdir()
    result = demo.run()
    assert result.database.is_file()
    assert "The Mailchimp plugin is not installed: the demo runs without it." in recorder.lines
    assert "$ supportersync run all --full -> 0" in recorder.lines
    assert "$ supportersync run all -> 0" in recorder.lines
    assert not any("Mailchimp:" in line for line in recorder.lines)
    assert [s.args[0] for s in result.steps].count("run") == 2
    assert not list(isolated_env.rglob("*supportersync*"))  # nothing in the user's home
