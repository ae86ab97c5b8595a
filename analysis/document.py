"""A report as a list of blocks, written out as Markdown and as one self-contained HTML page."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222;
       line-height: 1.45; }
/* Tables fit the page: a smaller font, and headers and text that wrap at spaces (column
   names have spaces for underscores); numbers never break inside. */
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.78em; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 2px 3px; text-align: right; }
th { background: #f2f2f2; vertical-align: bottom; }
p, li { overflow-wrap: anywhere; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; max-width: 100%; box-sizing: border-box; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; max-width: 100%; }
figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; height: auto; }
"""


@dataclass
class Document:
    """Blocks of a report, in order: headings, paragraphs, tables, code, figures."""

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("bullets", items))

    def table(self, frame: pd.DataFrame, *, index: bool = False, digits: int = 4) -> None:
        self.blocks.append(("table", (frame, index, digits)))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def figure(self, path: Path, caption: str) -> None:
        """A PNG already written beside the report."""
        self.blocks.append(("figure", (Path(path), caption)))

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                out += ["#" * level + " " + text, ""]
            elif kind == "paragraph":
                out += [value, ""]
            elif kind == "bullets":
                out += [f"- {item}" for item in value] + [""]
            elif kind == "table":
                frame, index, digits = value
                out += [_markdown(frame, index=index, digits=digits), ""]
            elif kind == "code":
                out += ["```", value.rstrip(), "```", ""]
            elif kind == "figure":
                path, caption = value
                out += [f"![{caption}]({path.name})", f"*{caption}*", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        """One page; figures are embedded as base64 PNGs so the file travels alone."""
        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
               f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                out.append(f"<h{level}>{html.escape(text)}</h{level}>")
            elif kind == "paragraph":
                out.append(f"<p>{html.escape(value)}</p>")
            elif kind == "bullets":
                out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in value) + "</ul>")
            elif kind == "table":
                frame, index, digits = value
                out.append(frame.to_html(index=index, float_format=lambda v, d=digits: f"{v:.{d}f}", border=0))
            elif kind == "code":
                out.append(f"<pre>{html.escape(value)}</pre>")
            elif kind == "figure":
                path, caption = value
                data = base64.b64encode(path.read_bytes()).decode()
                out.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out)


def _markdown(frame: pd.DataFrame, *, index: bool, digits: int) -> str:
    """``frame`` as a Markdown table: floats to ``digits`` decimals, every other value as written.

    Nothing is parsed back into a number: tabulate would read a trial id such as
    ``0e731_00003`` as the float 0 (Python's float() takes the underscore).
    """
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = [f"{v:.{digits}f}" if pd.notna(v) else "" for v in shown[column]]
    return shown.to_markdown(index=index, disable_numparse=True)
