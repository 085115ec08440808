"""`python -m pip install [-q] (-r FILE | -e FOLDER)`: check the request, record it, install nothing.

A requirements file must exist, parse, leave torch alone (Colab's torch matches its CUDA; reinstalling
it breaks the GPU), and be satisfied by this environment, so that the test ran with what Colab installs.
An editable install is recorded in $FAKE_COLAB_RECORD/editable.txt, which sitecustomize.py puts on the
path of every Python started afterwards, as the real `pip install -e` would.
"""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement


def check_requirements(path: Path) -> list[str]:
    if not path.is_file():
        return [f"ERROR: Could not open requirements file: {path}"]
    problems = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as err:
            problems.append(f"{path}:{number}: invalid requirement {line!r}: {err}")
            continue
        if requirement.name.lower() == "torch":
            problems.append(f"{path}:{number}: pins torch, which would replace Colab's CUDA build")
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            problems.append(f"{path}:{number}: {requirement.name} is not installed in the test environment")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{path}:{number}: {line} does not admit the tested {requirement.name} {installed}")
    return problems


def main(argv: list[str]) -> int:
    record = Path(os.environ["FAKE_COLAB_RECORD"])
    with open(record / "pip.jsonl", "a") as handle:
        handle.write(json.dumps(argv) + "\n")
    if not argv or argv[0] != "install":
        print(f"stand-in pip: only `install` is expected, got {argv}", file=sys.stderr)
        return 1
    args = [arg for arg in argv[1:] if arg not in ("-q", "--quiet")]
    problems = []
    while args:
        option = args.pop(0)
        if option in ("-r", "-e") and args:
            target = Path(args.pop(0))
            if option == "-r":
                problems += check_requirements(target)
            elif (target / "pyproject.toml").is_file():
                with open(record / "editable.txt", "a") as handle:
                    handle.write(f"{target}\n")
            else:
                problems.append(f"ERROR: {target} is not a Python project (no pyproject.toml)")
        else:
            problems.append(f"stand-in pip: unexpected argument {option!r} in {argv}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
