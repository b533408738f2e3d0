"""A Dockerfile read the way the build would run it, for checks that need no Docker engine.

dockerfile-parse splits the file into instructions; this module adds what the checks need: the
working directory each instruction runs in, the simple commands inside RUN/CMD/ENTRYPOINT
(shell form or ``sh -c``, split at ``&&``/``;``/``|``, ``cd`` followed), which file of the
repository a path in the image came from, and the files a COPY puts under a folder (so a test
can lay out the image's working directory from the repository).
"""

from __future__ import annotations

import fnmatch
import io
import json
import posixpath
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from dockerfile_parse import DockerfileParser

SEPARATORS = {"&&", "||", ";", "|", "(", ")", "&"}
SHELLS = {"sh", "/bin/sh", "bash", "/bin/bash"}


@dataclass(frozen=True)
class Instruction:
    kind: str  # FROM, COPY, RUN, CMD, ...
    value: str
    workdir: str  # the working directory it runs in (absolute, in the image)
    stage: int  # index of its FROM
    line: int  # 1-based, for messages


@dataclass(frozen=True)
class Command:
    """One simple command of a RUN/CMD/ENTRYPOINT, with the directory it runs in."""

    words: tuple[str, ...]
    cwd: str
    instruction: Instruction | None = None


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str  # absolute in the image
    instruction: Instruction

    @property
    def from_context(self) -> bool:
        return not self.instruction.value.lstrip().startswith("--from")


def parse(text: str) -> list[Instruction]:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    instructions, workdir, stage = [], "/", -1
    for item in parser.structure:
        kind, value = item["instruction"].upper(), item["value"]
        if kind == "COMMENT":
            continue
        if kind == "FROM":
            stage, workdir = stage + 1, "/"
        if kind == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, value.strip()))
        instructions.append(Instruction(kind, value, workdir, stage, item["startline"] + 1))
    return instructions


def args(instructions: list[Instruction]) -> dict[str, str]:
    """``ARG NAME=default`` values (what ``${NAME}`` means in a build without --build-arg)."""
    found = {}
    for ins in instructions:
        if ins.kind == "ARG" and "=" in ins.value:
            name, _, default = ins.value.strip().partition("=")
            found[name] = default.strip("\"'")
    return found


def exec_or_shell(value: str) -> list[str] | str:
    """The JSON (exec) form as a list, the shell form as a string."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return value
    return parsed if isinstance(parsed, list) else value


def split_shell(
    script: str, cwd: str = "/", instruction: Instruction | None = None
) -> list[Command]:
    """Simple commands of a shell script; ``exec`` and ``VAR=value`` prefixes dropped,
    redirections removed, ``cd`` applied to the commands after it."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words, skip_next = [], [], False
    for token in [*lexer, ";"]:
        if skip_next:
            skip_next = False
            continue
        if set(token) <= set("<>&") and ("<" in token or ">" in token):  # >, >>, 2>&1, <
            if words and words[-1].isdigit():
                words.pop()  # the file descriptor of 2>&1
            skip_next = True
            continue
        if token not in SEPARATORS:
            words.append(token)
            continue
        while words and (words[0] == "exec" or ("=" in words[0] and words[0][0].isalpha())):
            words.pop(0)
        if words and words[0] == "cd":
            cwd = posixpath.normpath(posixpath.join(cwd, words[1] if len(words) > 1 else "/"))
        elif words:
            commands.append(Command(tuple(words), cwd, instruction))
        words = []
    return commands


def commands(instruction: Instruction) -> list[Command]:
    """The simple commands a RUN, CMD or ENTRYPOINT runs (``sh -c SCRIPT`` opened up)."""
    form = exec_or_shell(instruction.value)
    if isinstance(form, str):
        return split_shell(form, instruction.workdir, instruction)
    if len(form) >= 3 and form[0] in SHELLS and form[1] == "-c":
        return split_shell(form[2], instruction.workdir, instruction)
    return [Command(tuple(form), instruction.workdir, instruction)] if form else []


def copies(instructions: list[Instruction]) -> list[Copy]:
    found = []
    for ins in instructions:
        if ins.kind not in {"COPY", "ADD"}:
            continue
        form = exec_or_shell(ins.value)
        words = form if isinstance(form, list) else shlex.split(ins.value)
        words = [w for w in words if not w.startswith("--")]
        *sources, dest = words
        absolute = posixpath.normpath(posixpath.join(ins.workdir, dest))
        if dest.endswith("/") or dest in {".", "./"}:
            absolute += "/"
        found.append(Copy(tuple(sources), absolute, ins))
    return found


def ignored(repo: Path) -> list[str]:
    """The .dockerignore patterns (what never reaches the build context)."""
    path = repo / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line.rstrip("/") for line in lines if line and not line.startswith("#")]


def placements(copy: Copy, repo: Path) -> list[tuple[Path, str]]:
    """(repository path, path in the image) for each thing one COPY copies. A folder's contents
    are copied, not the folder (Docker's rule); ``.`` honours .dockerignore."""
    found = []
    for source in copy.sources:
        path = repo / source
        if path.is_dir():
            patterns = ignored(repo) if path.resolve() == repo.resolve() else []
            for child in sorted(path.iterdir()):
                if not any(fnmatch.fnmatch(child.name, pattern) for pattern in patterns):
                    found.append((child, posixpath.join(copy.dest, child.name)))
            continue
        for match in sorted(repo.glob(source)):
            target = posixpath.join(copy.dest, match.name) if copy.dest.endswith("/") else copy.dest
            found.append((match, target))
    return found


def origin(path: str, copy_list: list[Copy], repo: Path) -> Path | None:
    """The repository file a path in the image was copied from (the last COPY wins)."""
    for copy in reversed([c for c in copy_list if c.from_context]):
        for repo_path, target in placements(copy, repo):
            if path == target:
                return repo_path
            if repo_path.is_dir() and path.startswith(target + "/"):
                return repo_path / path[len(target) + 1 :]
    return None


def lay_out(folder: str, copy_list: list[Copy], repo: Path, into: Path) -> None:
    """Copy into ``into`` what the COPY instructions put under ``folder`` in the image."""
    for copy in copy_list:
        if not copy.from_context:
            continue
        for repo_path, target in placements(copy, repo):
            if not target.startswith(folder.rstrip("/") + "/"):
                continue
            local = into / posixpath.relpath(target, folder)
            local.parent.mkdir(parents=True, exist_ok=True)
            if repo_path.is_dir():
                shutil.copytree(repo_path, local, dirs_exist_ok=True)
            else:
                shutil.copy2(repo_path, local)
