"""The manual stays true to the code: the CLI reference is the parsers' own text."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from uws_adapter.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent


def _gen_cli() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_cli", module)
    spec.loader.exec_module(module)
    return module


def test_the_committed_cli_reference_is_what_the_parsers_generate() -> None:
    gen_cli = _gen_cli()
    committed = (ROOT / "docs" / "cli-reference.md").read_text(encoding="utf-8")
    assert committed == gen_cli.render(), "docs/cli-reference.md is out of date: run python docs/gen_cli.py"


def test_the_reference_is_read_from_the_parsers(monkeypatch: pytest.MonkeyPatch) -> None:
    gen_cli = _gen_cli()
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands.choices["status"].add_argument("--since", metavar="WHEN", help="only callbacks after <WHEN> (*new*)")
    page = gen_cli.render(parser)
    assert "| `--since WHEN` | only callbacks after &lt;WHEN&gt; (\\*new\\*) |" in page
    assert page != gen_cli.render()
    # Defaults read from the environment are named, never taken from this machine's environment.
    monkeypatch.setenv("UWS_ADAPTER_DAILY_BUDGET", "17")
    assert gen_cli.render() == (ROOT / "docs" / "cli-reference.md").read_text(encoding="utf-8")


@pytest.mark.shows_secrets  # the page names the emulator's documented demo login (uws-user:uws-password)
def test_the_check_mode_fails_on_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen_cli = _gen_cli()
    stale = tmp_path / "cli-reference.md"
    stale.write_text("# CLI reference\n", encoding="utf-8")
    monkeypatch.setattr(gen_cli, "PAGE", stale)
    assert gen_cli.main(["--check"]) == 1
    assert gen_cli.main([]) == 0
    assert gen_cli.main(["--check"]) == 0


def _anchors(page: Path) -> set[str]:
    """The heading ids MkDocs gives a page (its toc slugs: lower case, code marks and punctuation
    dropped, spaces as hyphens)."""
    anchors, fenced = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().replace("`", "").lower()
            anchors.add(re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", title)).strip("-"))
    return anchors


def test_the_readme_links_resolve() -> None:
    """The README is read on GitHub and PyPI, outside MkDocs' strict check: its links are checked here."""
    readme = ROOT / "README.md"
    links = re.findall(r"\]\(([^)\s]+)\)", readme.read_text(encoding="utf-8"))
    assert links
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        target, _, anchor = link.partition("#")
        page = (ROOT / target) if target else readme
        assert page.is_file(), f"README.md links to {link}: no such file"
        if anchor:
            assert anchor in _anchors(page), f"README.md links to {link}: no such heading"


def test_the_version_is_written_once() -> None:
    """setup.cfg holds the version; the package reads it from the installed metadata (`--version`
    prints it), the changelog has a section for it, and no module writes it a second time."""
    from importlib.metadata import version

    import uws_adapter

    written = re.search(r"^version\s*=\s*(\S+)\s*$", (ROOT / "setup.cfg").read_text(encoding="utf-8"), re.M)
    assert written is not None
    assert uws_adapter.__version__ == version("uws-adapter") == written.group(1)
    assert f"## [{written.group(1)}]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    quoted = (f'"{written.group(1)}"', f"'{written.group(1)}'")
    for module in sorted(Path(uws_adapter.__file__).parent.rglob("*.py")):
        text = module.read_text(encoding="utf-8")
        assert not any(q in text for q in quoted), f"{module} writes the version; read uws_adapter.__version__"


def test_every_package_is_in_setup_cfg() -> None:
    """A subpackage missing from setup.cfg's packages is missing from the wheel: the installed
    package fails to import (as uws_adapter.settings did, caught only by the floors run)."""
    listed = re.search(r"^packages\s*=\s*\n((?:[ \t]+\S+\n)+)", (ROOT / "setup.cfg").read_text(encoding="utf-8"), re.M)
    assert listed is not None
    packages = {line.strip() for line in listed.group(1).splitlines()}
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "uws_adapter").rglob("__init__.py")}
    assert found - packages == set(), "add them to [options] packages in setup.cfg"
