"""Writes the SDK's synchronous layer from its asynchronous one (in the manner of ``unasync``).

    python scripts/generate_sync.py          # rewrite client.py, admin.py, _sync_transport.py
    python scripts/generate_sync.py --check  # exit 1 when one of them is not what its source gives

The async files are the ones written by hand: removing ``await`` is mechanical, adding it is not.
On the way each source is changed token by token:
- the keywords ``async`` and ``await`` are dropped (``async def`` -> ``def``, ``async with`` -> ``with``);
- the names in ``NAMES`` are swapped (in code, and as whole words in strings and comments);
- a line with a comment ``# sync: CODE`` reads CODE, at the line's indentation (a comment alone on
  its line adds a line only the sync side has); a line with ``# sync:`` and nothing after it is left out.
Then ruff sorts the imports (the renames can change their order), and a header saying where the file
comes from takes the place of the comment lines the source starts with. The test run checks that the
generated files are up to date (tests/test_generated_sync.py).
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]
PACKAGE = SDK / "src" / "nexus_sdk"

#: Async source -> generated sync file, both in src/nexus_sdk.
FILES = {
    "async_client.py": "client.py",
    "async_admin.py": "admin.py",
    "_async_transport.py": "_sync_transport.py",
}

NAMES = {
    "AsyncNexusClient": "NexusClient",
    "AsyncNexusAdminClient": "NexusAdminClient",
    "AsyncTransport": "SyncTransport",
    "_async_transport": "_sync_transport",
    "AsyncSleep": "SyncSleep",
    "AsyncClient": "Client",
    "AsyncIterator": "Iterator",
    "aclose": "close",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "asynchronous": "synchronous",
}

_WORDS = re.compile(r"\b(" + "|".join(map(re.escape, NAMES)) + r")\b")
_DIRECTIVE = re.compile(r"#\s*sync:\s?(.*)$")
_TEXT_TOKENS = {tokenize.STRING, tokenize.COMMENT} | (
    {tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set()
)


def unasync(source: str) -> str:
    """The sync form of one async source file, before its imports are sorted."""
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))

    def offset(pos: tuple[int, int]) -> int:
        return starts[pos[0] - 1] + pos[1]

    edits: list[tuple[int, int, str]] = []
    directive_rows: set[int] = set()
    for tok in tokens:
        if tok.type == tokenize.COMMENT and (m := _DIRECTIVE.match(tok.string)):
            row = tok.start[0]
            line = lines[row - 1]
            indent = line[: len(line) - len(line.lstrip())]
            code = m.group(1).rstrip()
            if code:
                edits.append((starts[row - 1], starts[row - 1] + len(line.rstrip("\r\n")), indent + code))
            else:
                edits.append((starts[row - 1], starts[row], ""))
            directive_rows.add(row)
    for tok in tokens:
        if tok.start[0] in directive_rows:
            continue
        if tok.type == tokenize.NAME and tok.string in ("async", "await"):
            end = offset(tok.end)
            while source[end] == " ":
                end += 1
            edits.append((offset(tok.start), end, ""))
        elif tok.type == tokenize.NAME and tok.string in NAMES:
            edits.append((offset(tok.start), offset(tok.end), NAMES[tok.string]))
        elif tok.type in _TEXT_TOKENS:
            swapped = _WORDS.sub(lambda m: NAMES[m.group(1)], tok.string)
            if swapped != tok.string:
                edits.append((offset(tok.start), offset(tok.end), swapped))
    out = source
    for start, end, text in sorted(edits, reverse=True):
        out = out[:start] + text + out[end:]
    return out


def generate(name: str) -> str:
    """The full text of the sync file generated from the async source ``name``."""
    source = (PACKAGE / name).read_text(encoding="utf-8")
    while source.startswith("#"):  # the source's own note on top gives way to the header
        source = source.split("\n", 1)[1]
    target = PACKAGE / FILES[name]
    header = (
        f"# Generated from {name} by scripts/generate_sync.py: do not edit. Edit {name}, then run\n"
        "# `python scripts/generate_sync.py` in sdks/python.\n"
    )
    sorted_imports = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--quiet", "--select", "I", "--fix", "--stdin-filename", str(target)],
        input=header + unasync(source),
        capture_output=True,
        text=True,
        cwd=SDK,
        check=False,
    )
    if sorted_imports.returncode != 0 or not sorted_imports.stdout:
        raise SystemExit(f"ruff could not sort the imports of {FILES[name]}:\n{sorted_imports.stderr}")
    return sorted_imports.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file is out of date")
    args = parser.parse_args()
    stale = []
    for name, out in FILES.items():
        text = generate(name)
        path = PACKAGE / out
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(out)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(
            f"Out of date (generated from their async sources): {', '.join(stale)}. "
            "Run `python scripts/generate_sync.py` in sdks/python.",
            file=sys.stderr,
        )
        return 1
    for out in stale:
        print(f"wrote src/nexus_sdk/{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
