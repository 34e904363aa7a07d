"""Print, check or rewrite the option table of docs/options.md from ``seqjax.config.SCHEMA``.

    python scripts/options_table.py            # print the table
    python scripts/options_table.py --write    # replace the table in docs/options.md
    python scripts/options_table.py --check    # exit 1 when docs/options.md is out of date
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from seqjax.config import markdown_table

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "options.md"
BEGIN, END = "<!-- options:begin -->", "<!-- options:end -->"


def with_table(text: str) -> str:
    """``text`` with what lies between the option markers replaced by the generated table."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{markdown_table()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in docs/options.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/options.md is out of date")
    args = parser.parse_args()
    if not (args.write or args.check):
        print(markdown_table())
        return 0
    text = DOC.read_text(encoding="utf-8")
    if args.check:
        return int(with_table(text) != text)
    DOC.write_text(with_table(text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
