"""What a reader of README.md and docs/*.md relies on: every relative link (and its
#anchor) leads somewhere, and every command the pages show names a make target, a script,
config groups and options, config keys, bench cases and benchmark configurations that exist.
"""

from __future__ import annotations

import ast
import functools
import re
import shlex
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from tests.conftest import CONF, ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE_COMMAND = re.compile(r"`((?:python|make|displace) [^`]+)`")
OVERRIDE = re.compile(r"^(\+{0,2}|~)([\w./-]+)=(.*)$", re.S)
MISSING = object()


def prose(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    for line in prose(page.read_text()).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            base = slug(match.group(1))
            seen[base] = seen.get(base, -1) + 1
            seen[f"{base}-{seen[base]}" if seen[base] else base] = 0
    return set(seen)


def commands(page: Path) -> list[list[str]]:
    """The commands of a page: each line of its shell code blocks, and inline code that
    starts with ``python``, ``make`` or ``displace``; as shell words."""
    text = page.read_text()
    lines = []
    for language, body in FENCE.findall(text):
        if language in ("bash", "sh", "shell"):
            lines += body.replace("\\\n", " ").splitlines()
    lines += [" ".join(span.split()) for span in INLINE_COMMAND.findall(prose(text))]
    return [words for line in lines if (words := shlex.split(line, comments=True))]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def bench_cases() -> set[str]:
    """The case names of ``scripts/bench.py`` (its ``CASES = {...}`` and ``CASES |= {...}``)."""
    cases = set()
    for node in ast.walk(ast.parse((ROOT / "scripts" / "bench.py").read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        assigns_cases = any(isinstance(t, ast.Name) and t.id == "CASES" for t in targets)
        if assigns_cases and isinstance(node.value, ast.Dict):
            cases |= {key.value for key in node.value.keys if isinstance(key, ast.Constant)}
    return cases


@functools.lru_cache
def composed(config_name: str, groups: tuple[str, ...]) -> DictConfig:
    """The config with these group choices, composed once: many commands share them."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(groups), return_hydra_config=True)


def check_overrides(config_name: str, words: list[str]) -> list[str]:
    """What is wrong with ``words``, Hydra overrides of ``conf/<config_name>.yaml``: a group
    option with no file, a key the composed config does not have (``+`` keys are new)."""
    problems, groups, keys = [], [], []
    for word in words:
        match = OVERRIDE.match(word)
        if word.startswith("-") or "<" in word or not match:
            continue
        prefix, key, value = match.groups()
        if (CONF / key).is_dir():
            options = [v for v in value.split(",") if v and v != "null"]
            absent = [v for v in options if not (CONF / key / f"{v}.yaml").is_file()]
            problems += [f"{key}={v}: no conf/{key}/{v}.yaml" for v in absent]
            groups += [f"{key}={options[0]}"] if options else []
        elif not prefix:
            keys.append(key)
        if config_name == "benchmark" and key == "select":
            known = yaml.safe_load((CONF / "benchmark.yaml").read_text())["configurations"]
            names = value.strip("[]").split(",")
            problems += [f"select: no configuration {n}" for n in names if n not in known]
    if problems:
        return problems
    cfg = composed(config_name, tuple(groups))
    missing = MISSING
    return [
        f"no key {key}"
        for key in keys
        if OmegaConf.select(cfg, key, default=missing, throw_on_resolution_failure=False) is missing
    ]


def check_command(words: list[str]) -> list[str]:
    targets = make_targets()
    if words[0] == "make":
        named = [w for w in words[1:] if "=" not in w]
        problems = [f"no make target {t}" for t in named if t not in targets]
        args = [w.split("=", 1)[1] for w in words[1:] if w.startswith("ARGS=")]
        return problems + [p for a in args for p in check_overrides("displace", a.split())]
    if words[0] == "displace":
        return check_overrides("displace", words[1:])
    if words[0].endswith("python") and len(words) > 1 and words[1].startswith("scripts/"):
        script, args = ROOT / words[1], words[2:]
        if not script.is_file():
            return [f"no script {words[1]}"]
        if script.name == "bench.py":
            return [f"no bench case {a}" for a in args if not a.startswith("-") and a not in bench_cases()]
        return check_overrides("benchmark" if script.name == "benchmark.py" else "displace", args)
    return []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for link in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", link):
            continue  # https:, mailto:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.relative_to(ROOT)}")
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_names_what_exists(page):
    found = commands(page)
    problems = [f"{shlex.join(words)}: {p}" for words in found for p in check_command(words)]
    assert not problems, problems


def test_the_checks_catch_what_they_are_for():
    assert check_command(["make", "no-such-target"])
    assert check_command(["python", "scripts/nothing.py"])
    assert check_command(["python", "scripts/displace.py", "inpainter=nothing"])
    assert check_command(["python", "scripts/displace.py", "inpainter.no_such_key=1"])
    assert check_command(["python", "scripts/bench.py", "no-such-case"])
    assert check_command(["python", "scripts/benchmark.py", "select=[telea,nothing]"])
    assert not check_command(["python", "scripts/displace.py", "-m", "inpainter=telea,patchmatch", "dx=3"])
    assert not check_command(["python", "scripts/displace.py", "segmenter=sam", "segmenter.model_type=vit_h"])
    assert anchors(ROOT / "README.md") >= {"usage", "two-commands"}
