"""`make mutation`: plant small bugs in the critical modules and count how many the tests catch.

mutmut (configured in pyproject.toml's `[tool.mutmut]`) copies the packages into
`mutants/`, rewrites every function of the modules in `only_mutate` into one variant per
mutation (a comparison flipped, a constant changed, an argument dropped, ...), and runs,
for each variant, the tests of `pytest_add_cli_args_test_selection` that reach that
function. A variant some test fails on is killed; one every test passes survived.

This script starts from a clean `mutants/` (so the figures are those of the code as it
is), runs mutmut, and prints per module: mutants, killed, survived, the score
(killed / mutants), and the score once the survivors judged equivalent (no caller can
tell them from the original; listed with the reason in tests/mutation-equivalents/*.yaml)
are set aside. The surviving mutants that are not judged equivalent are printed as
diffs: each is a bug the tests would let through. Exits 1 when a module scores below
`--fail-under` once equivalents are set aside.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests import postgres

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
EQUIVALENTS = ROOT / "tests" / "mutation-equivalents"  # one YAML file per area
# mutmut's exit codes of a mutant's test run (mutmut.stats.status_by_exit_code)
KILLED_CODES = {1, 3, 37, -11, -9}  # a test failed, pytest crashed, the type check, a crash
TIMEOUT_CODES = {36, -24, 24, 152, 255}  # the tests ran past their time: an endless loop
NO_TESTS_CODES = {5, 33}
SKIPPED_CODES = {34}
ALIVE = ("survived", "no tests", "not checked")


@dataclass(frozen=True)
class Mutant:
    module: str  # path, e.g. serving/contact.py
    name: str  # mutmut's name, e.g. serving.contact.x_check__mutmut_7
    status: str  # killed, timeout, survived, no tests, skipped, not checked
    function: str  # e.g. check, ActionLog.record
    change: str  # "old line -> new line"


def _key(mutant: Mutant) -> tuple[str, str, str]:
    return mutant.module, mutant.function, mutant.change


def critical_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def _status(code: int | None) -> str:
    if code is None:
        return "not checked"
    if code in KILLED_CODES:
        return "killed"
    if code in TIMEOUT_CODES:
        return "timeout"
    if code in NO_TESTS_CODES:
        return "no tests"
    if code in SKIPPED_CODES:
        return "skipped"
    return "survived" if code == 0 else f"suspicious ({code})"


def _readable(mangled: str) -> str:
    """`x_check` -> `check`; `xǁActionLogǁrecord` -> `ActionLog.record`."""
    if mangled.startswith("xǁ"):
        _, owner, method = mangled.split("ǁ", 2)
        return f"{owner}.{method}"
    return mangled.removeprefix("x_")


def _function_sources(mutated: Path) -> dict[str, str]:
    """Every function of mutmut's rewritten module by name (variants and originals)."""
    text = mutated.read_text()
    lines = text.splitlines()  # once: ast.get_source_segment splits the file on every call
    return {
        node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name
    }


def _change(original: str, variant: str) -> str:
    """The lines a mutation changed, as `old -> new` (whitespace-trimmed)."""
    # the two differ in their function names (`x_f__mutmut_orig`, `x_f__mutmut_3`)
    original = re.sub(r"__mutmut_\w+", "", original, count=1)
    variant = re.sub(r"__mutmut_\w+", "", variant, count=1)
    removed, added = [], []
    for line in difflib.ndiff(original.splitlines(), variant.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:].strip())
        elif line.startswith("+ "):
            added.append(line[2:].strip())
    return f"{' / '.join(removed)} -> {' / '.join(added)}"


def read_results(modules: list[str]) -> list[Mutant]:
    found = []
    for module in modules:
        meta = MUTANTS / f"{module}.meta"
        if not meta.exists():
            continue
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        sources = _function_sources(MUTANTS / module)
        for name, code in codes.items():
            variant = name.rsplit(".", 1)[1]
            mangled = variant.rsplit("__mutmut_", 1)[0]
            found.append(
                Mutant(
                    module,
                    name,
                    _status(code),
                    _readable(mangled),
                    _change(sources.get(f"{mangled}__mutmut_orig", ""), sources.get(variant, "")),
                )
            )
    return found


def load_equivalents() -> dict[tuple[str, str, str], str]:
    """(module, function, change) -> why the mutant cannot be told from the original."""
    entries = [
        entry
        for path in sorted(EQUIVALENTS.glob("*.yaml"))
        for entry in yaml.safe_load(path.read_text()) or []
    ]
    return {(e["module"], e["function"], e["change"]): e["why"] for e in entries}


def _mutant_pattern(module: str) -> str:
    """mutmut's pattern for every mutant of a module: serving/contact.py -> serving.contact.*"""
    return module.removesuffix(".py").replace("/", ".") + ".*"


def run_mutmut(max_children: int, log: Path, patterns: list[str]) -> int:
    """mutmut over a clean copy; its progress display goes to `log`, not the terminal.

    The tests' PostgreSQL cases share one server started here, rather than starting a
    cluster in each of the thousands of short test runs; without PostgreSQL installed
    they are left out. With `patterns`, only the mutants whose names match are tested.
    """
    shutil.rmtree(MUTANTS, ignore_errors=True)
    MUTANTS.mkdir()
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    command += patterns
    with contextlib.ExitStack() as stack:
        environment = dict(os.environ)
        if postgres.installed():
            environment[postgres.SERVER_ENV] = stack.enter_context(postgres.postgres_cluster())
        else:
            print("PostgreSQL is not installed: its test cases are left out", file=sys.stderr)
            environment["PYTEST_ADDOPTS"] = "-k 'not postgresql'"
        out = stack.enter_context(log.open("w"))
        done = subprocess.run(
            command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    return done.returncode


def report(
    mutants: list[Mutant], equivalents: dict[tuple[str, str, str], str], fail_under: float
) -> list[str]:
    """Print the per-module table; the modules scoring below `fail_under` come back."""
    header = (
        f"{'module':34} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} "
        f"{'no tests':>8} {'equiv.':>6} {'score':>6} {'w/o eq.':>7}"
    )
    print(header)
    print("-" * len(header))
    scores: dict[str, float] = {}
    for module in dict.fromkeys(m.module for m in mutants):
        mine = [m for m in mutants if m.module == module and m.status != "skipped"]
        count = Counter(m.status for m in mine)
        caught = count["killed"] + count["timeout"]
        equivalent = sum(
            1
            for m in mine
            if m.status in ("survived", "no tests")
            and (m.module, m.function, m.change) in equivalents
        )
        score = caught / len(mine) if mine else 1.0
        scores[module] = caught / (len(mine) - equivalent) if len(mine) > equivalent else 1.0
        print(
            f"{module:34} {len(mine):>7} {count['killed']:>6} {count['timeout']:>7} "
            f"{count['survived']:>8} {count['no tests']:>8} {equivalent:>6} "
            f"{score:>6.1%} {scores[module]:>7.1%}"
        )
    return [module for module, score in scores.items() if score < fail_under]


PARSER = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
PARSER.add_argument("--max-children", type=int, default=2, help="mutants tested at once")
PARSER.add_argument("--fail-under", type=float, default=0.80, help="score every module needs")
PARSER.add_argument(
    "--report-only", action="store_true", help="report the results already under mutants/"
)
PARSER.add_argument(
    "modules",
    nargs="*",
    help="only these of the critical modules (paths, e.g. serving/contact.py); default all",
)


def main(argv: list[str] | None = None) -> int:
    args = PARSER.parse_args(argv)
    started = time.monotonic()
    modules = critical_modules()
    unknown = sorted(set(args.modules) - set(modules))
    if unknown:
        PARSER.error(f"not a critical module: {', '.join(unknown)} (expected one of {modules})")
    chosen = args.modules or modules
    if not args.report_only:
        patterns = [_mutant_pattern(module) for module in args.modules]
        code = run_mutmut(args.max_children, MUTANTS / "mutation.log", patterns)
        if code != 0:
            print(f"mutmut failed (exit {code}); see mutants/mutation.log", file=sys.stderr)
            return code
    mutants = read_results(chosen)
    if not mutants:
        print("no mutation results under mutants/", file=sys.stderr)
        return 2
    equivalents = {key: why for key, why in load_equivalents().items() if key[0] in chosen}
    failing = report(mutants, equivalents, args.fail_under)
    seen = {_key(m) for m in mutants}
    stale = [key for key in equivalents if key not in seen]
    alive = [m for m in mutants if m.status in ALIVE and _key(m) not in equivalents]
    if alive:
        print(f"\n{len(alive)} surviving mutants not judged equivalent (bugs the tests miss):")
        for m in alive:
            number = m.name.rsplit("__mutmut_", 1)[1]
            print(f"  {m.module} {m.function} [{m.status}] {number}: {m.change}")
    if stale:
        print(f"\n{len(stale)} equivalents in {EQUIVALENTS.name}/ match no mutant (code changed):")
        for module, function, change in stale:
            print(f"  {module} {function}: {change}")
    print(f"\nmutation testing took {time.monotonic() - started:.0f} s")
    if failing:
        print(f"below {args.fail_under:.0%}: {', '.join(failing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
