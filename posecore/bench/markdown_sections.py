"""Benchmarks write their tables into docs/results.md between their own markers, leaving the rest as it is."""

from __future__ import annotations

from pathlib import Path

NEW_FILE_TEXT = "# PoseFit results\n"


def write_marked_section(
    path: Path, section: str, start: str, end: str, new_file_text: str = NEW_FILE_TEXT, heading: str | None = None
) -> None:
    """Put ``section`` between the markers ``start`` and ``end`` of the markdown file ``path``.

    Where the file lacks the markers they are appended (under ``## heading`` when given); a missing file starts
    as ``new_file_text``. The file is replaced atomically.
    """
    from posecore.io.atomic import atomic_write_text

    block = f"{start}\n{section}{end}"
    text = path.read_text() if path.exists() else new_file_text
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        title = f"## {heading}\n\n" if heading else ""
        text = text.rstrip("\n") + "\n\n" + title + block + "\n"
    atomic_write_text(path, text)
