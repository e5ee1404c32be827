"""MkDocs hook: the settings reference is made from the settings class at build time.

`settings.md` holds the marker `<!-- settings-table -->`; the build replaces it with one table per
section of `alertanim.agents.settings.Settings`: each field's environment variable, type,
constraints, default and description. A nested model (`method`, `MethodConfig`) becomes its own
section of `<PREFIX><FIELD><DELIMITER><SUBFIELD>` variables. The description is the field's
`description` when it has one, and the comments written beside it or just above it in the
source (read with `inspect`, `ast` and `tokenize`). A one-line comment that opens a paragraph
and does not end a sentence (`# Kafka`) names a section. Secret defaults are never printed.
"""

from __future__ import annotations

import ast
import html
import inspect
import io
import json
import re
import textwrap
import tokenize
import types
import typing

MARKER = "<!-- settings-table -->"


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if MARKER not in markdown:
        return markdown
    from alertanim.agents.settings import Settings

    return markdown.replace(MARKER, settings_reference(Settings))


# -- the source's comments ------------------------------------------------------------------


class _Notes:
    def __init__(self) -> None:
        self.sections: dict[str, str] = {}  # field name -> section heading
        self.comments: dict[str, str] = {}  # field name -> its comments


def _source_notes(cls: type) -> _Notes:
    """The section and comments of each field declared in `cls`'s own class body."""
    notes = _Notes()
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (OSError, TypeError, SyntaxError, tokenize.TokenError):
        return notes
    body = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    if body is None:
        return notes
    lines = source.splitlines()
    standalone: dict[int, str] = {}  # line -> a comment alone on its line
    trailing: dict[int, str] = {}  # line -> a comment after code
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            text = tok.string.lstrip("#").strip()
            (standalone if not lines[row - 1][:col].strip() else trailing)[row] = text
    starts = {n.lineno: n for n in body.body}

    section = ""
    pending: list[str] = []
    paragraph_start = True
    for row in range(body.body[0].lineno if body.body else 1, len(lines) + 1):
        if not lines[row - 1].strip():
            pending, paragraph_start = [], True
            continue
        if row in standalone:
            pending.append(standalone[row])
            continue
        node = starts.get(row)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above = pending
            if (paragraph_start and len(above) == 1 and not above[0].endswith((".", ":"))
                    and len(above[0]) <= 40):
                section, above = above[0], []
            own = [trailing[r] for r in range(node.lineno, (node.end_lineno or node.lineno) + 1)
                   if r in trailing]
            name = node.target.id
            notes.sections[name] = section
            text = " ".join(above + own)
            if text:
                notes.comments[name] = text
        pending, paragraph_start = [], False
    return notes


# -- rendering ------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Markdown table cell text: HTML-escaped outside code spans, pipes escaped everywhere."""
    parts = re.split(r"(`[^`]*`)", text)
    out = [p if p.startswith("`") and p.endswith("`") and len(p) > 1 else html.escape(p, quote=False)
           for p in parts]
    return "".join(out).replace("|", "\\|")


def _code(value: str) -> str:
    return f"`{value}`" if "`" not in value else f"`` {value} ``"


def _is_secret(annotation) -> bool:
    from pydantic import SecretBytes, SecretStr

    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_is_secret(a) for a in typing.get_args(annotation))


def _nested_model(annotation):
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _type(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(_code(str(a)) for a in args)
    if origin in (typing.Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        return " or ".join(_type(a) for a in kept)
    if origin in (tuple, list, set, frozenset):
        inner = [a for a in args if a is not Ellipsis]
        return f"list of {_type(inner[0]) if inner else 'values'} (JSON)"
    if _is_secret(annotation):
        return "secret string"
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))


def _constraints(info) -> list[str]:
    out = []
    for item in info.metadata:
        for attr, sign in _BOUNDS:
            value = getattr(item, attr, None)
            if value is not None:
                out.append(f"{sign} {value}")
        if getattr(item, "min_length", None) is not None:
            out.append("not empty" if item.min_length == 1
                       else f"at least {item.min_length} characters")
        if getattr(item, "max_length", None) is not None:
            out.append(f"at most {item.max_length} characters")
        if getattr(item, "pattern", None) is not None:
            out.append(f"matches {_code(item.pattern)}")
    return out


def _default(info) -> str:
    if _is_secret(info.annotation):
        return "*secret, not shown*"
    if info.is_required():
        return "*required*"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return _code("true" if value else "false")
    if isinstance(value, (tuple, list, set, frozenset)):
        return _code(json.dumps(list(value), ensure_ascii=False, separators=(",", ":")))
    if isinstance(value, str):
        return _code(value) if value else '`""`'
    return _code(str(value))


def _sentences(*texts: str | None) -> str:
    kept = [t.strip() for t in texts if t and t.strip()]
    return " ".join(t if t.endswith((".", ":", ";", "!", "?")) or i == len(kept) - 1 else t + "."
                    for i, t in enumerate(kept))


def _rows(model: type, prefix: str, notes: _Notes) -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        description = _sentences(info.description, notes.comments.get(name))
        kind = _type(info.annotation)
        bounds = _constraints(info)
        if bounds:
            kind += ", " + ", ".join(bounds)
        rows.append(f"| {_code(prefix + name.upper())} | {_cell(kind)} | {_cell(_default(info))} "
                    f"| {_cell(description)} |")
    return rows


_HEAD = ["| variable | type | default | description |", "|---|---|---|---|"]


def settings_reference(settings_cls: type) -> str:
    """Markdown for every field of a pydantic-settings class, section by section."""
    config = settings_cls.model_config
    prefix = config.get("env_prefix", "") or ""
    delimiter = config.get("env_nested_delimiter") or ""
    notes = _source_notes(settings_cls)
    sections: dict[str, list] = {}
    for name, info in settings_cls.model_fields.items():
        sections.setdefault(notes.sections.get(name, ""), []).append((name, info))

    out: list[str] = []
    for title, fields in sections.items():
        flat = [(n, i) for n, i in fields if not (_nested_model(i.annotation) and delimiter)]
        nested = [(n, i) for n, i in fields if _nested_model(i.annotation) and delimiter]
        if flat:
            out += [f"## {title or 'General'}", ""]
            sub = type("_Subset", (), {"model_fields": dict(flat)})
            out += _HEAD + _rows(sub, prefix, notes) + [""]
        for name, info in nested:
            model = _nested_model(info.annotation)
            var = prefix + name.upper()
            out += [f"## {title or name}", ""]
            lead = (f"`{model.__name__}` (`{inspect.getmodule(model).__name__}`), nested as "
                    f"`{name}`: each of its fields is `{var}{delimiter}<FIELD>`, or `{var}` "
                    "sets the whole as one JSON object.")
            comment = notes.comments.get(name)
            out += [lead + (f" {html.escape(comment, quote=False)}" if comment else ""), ""]
            out += _HEAD + _rows(model, var + delimiter, _source_notes(model)) + [""]
    return "\n".join(out).rstrip() + "\n"
