"""The shell commands written in README.md and docs/*.md, as a reader would copy them:
fenced ```sh, ```bash and ```console blocks (console lines start with `$ `), lines joined
at a trailing backslash, here-documents and comments left out."""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCES = ("```sh", "```bash", "```console")
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;"}


@dataclass(frozen=True)
class Block:
    """One fenced shell block: where it is, and its text as a shell would read it."""

    file: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def commands(self) -> tuple[str, ...]:
        """Logical command lines: continuations joined, here-documents dropped."""
        out: list[str] = []
        pending = ""
        heredoc: str | None = None
        for raw in self.text.splitlines():
            if heredoc is not None:
                if raw.strip() == heredoc:
                    heredoc = None
                continue
            marker = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", raw)
            if marker:
                heredoc = marker.group(1)
                raw = raw[:marker.start()]
            pending += raw + "\n"
            if raw.endswith("\\"):
                pending = pending[:-2] + " "
                continue
            try:
                shlex.split(pending, comments=True)
            except ValueError:      # a quoted string runs on to the next line
                continue
            if pending.strip():
                out.append(pending.strip())
            pending = ""
        return tuple(out)

    def simple_commands(self) -> tuple[tuple[str, ...], ...]:
        """Each command's words (variables unexpanded), split at ; && || | & and
        without redirections or leading VAR=value assignments."""
        found = []
        for command in self.commands():
            command = re.sub(r"\s[0-9]?>>?\s*[^\s;&|]+", " ", command)
            lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
            lexer.commenters = "#"
            lexer.whitespace_split = True
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token in SEPARATORS:
                    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
                        words.pop(0)
                    if words:
                        found.append(tuple(words))
                    words = []
                else:
                    words.append(token)
        return tuple(found)


def shell_blocks() -> tuple[Block, ...]:
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    blocks = []
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        index = 0
        while index < len(lines):
            fence = lines[index].strip()
            if fence in FENCES:
                end = index + 1
                while lines[end].strip() != "```":
                    end += 1
                body = textwrap.dedent("\n".join(lines[index + 1:end]))
                if fence == "```console":
                    body = "\n".join(line[2:] for line in body.splitlines()
                                     if line.startswith("$ "))
                blocks.append(Block(str(path.relative_to(REPO)), index + 1, body))
                index = end
            index += 1
    return tuple(blocks)


def used_variables(text: str) -> set[str]:
    """Shell variables a block expands (outside single quotes)."""
    unquoted = re.sub(r"'[^']*'", "''", text)
    unquoted = "\n".join(line.split(" #", 1)[0] for line in unquoted.splitlines()
                         if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", unquoted))


def defined_variables(text: str) -> set[str]:
    """Variables a block sets: assignments, exports, for loops, sourced env files."""
    names = set(re.findall(r"(?:^|[\s;(])(?:export\s+)?([A-Za-z_]\w*)=", text, re.M))
    names |= set(re.findall(r"\bfor\s+([A-Za-z_]\w*)\s+in\b", text))
    for sourced in re.findall(r"(?:^|\s)(?:source|\.)\s+(\S+\.env)", text):
        names |= set(re.findall(r"^([A-Za-z_]\w*)=", (REPO / sourced).read_text(), re.M))
    return names
