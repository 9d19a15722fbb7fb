"""The little Markdown a lab's description and notes use, as HTML for the report."""

from __future__ import annotations

import re

from markupsafe import Markup, escape


def markdownish(text: str) -> Markup:
    """The little Markdown a lab's notes use: paragraphs, "- " lists, `code`,
    **bold**, fenced code. Escaped first, so nothing in it becomes markup of its own."""
    blocks: list[str] = []
    lines = text.strip().splitlines()
    index = 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    while index < len(lines):
        line = lines[index].rstrip()
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code = []
            index += 1
            while index < len(lines) and not lines[index].strip().startswith("```"):
                code.append(lines[index])
                index += 1
            blocks.append(f"<pre>{escape(chr(10).join(code))}</pre>")
        elif re.match(r"^([-*]|\d+[.)])\s+", stripped):
            flush()
            ordered = bool(re.match(r"^\d", stripped))
            items: list[str] = []
            while index < len(lines) and lines[index].strip():
                current = lines[index].strip()
                marker = re.match(r"^([-*]|\d+[.)])\s+", current)
                if marker:
                    items.append(current[marker.end() :])
                elif items:
                    items[-1] += " " + current
                index += 1
            tag = "ol" if ordered else "ul"
            body = "".join(f"<li>{_inline(item)}</li>" for item in items)
            blocks.append(f"<{tag}>{body}</{tag}>")
            continue
        elif stripped.startswith("#"):
            flush()
            blocks.append(f"<h3>{_inline(stripped.lstrip('#').strip())}</h3>")
        elif not stripped:
            flush()
        else:
            paragraph.append(stripped)
        index += 1
    flush()
    return Markup("\n".join(blocks))


def _inline(text: str) -> str:
    pieces = re.split(r"(`[^`]+`)", text)
    out = []
    for piece in pieces:
        if len(piece) > 1 and piece.startswith("`") and piece.endswith("`"):
            out.append(f"<code>{escape(piece[1:-1])}</code>")
        else:
            escaped = escape(piece)
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped))
    return "".join(out)
