"""Email templates: checked, compiled for SES, and rendered the way SES renders them.

Each template is a folder ``activation/templates/<template>/`` of ``subject.txt``, ``body.html``
and ``body.txt``. The files use ``{{field}}`` for a mart column (or ``{{unsubscribe_url}}``,
added by the sink) and ``{{#if field}} … {{else}} … {{/if}}``; nothing else (no triple braces,
helpers or paths). Every field a template names is checked against the mart's columns before
anything is sent, and every body must carry ``{{unsubscribe_url}}``.

Escaping. SES does not HTML-escape template data ("SES doesn't escape HTML content when
rendering the HTML template", SES developer guide, advanced personalization), and it is
Handlebars, where ``{{x}}`` would escape and ``{{{x}}}`` would not. So the template deployed to
SES is *compiled* from the files: in the subject and text part ``{{field}}`` becomes
``{{{field}}}`` (the raw value), in the HTML part ``{{{field__html}}}``, and the sink sends both
``field`` (raw) and ``field__html`` (``html.escape``d) in each destination's template data, for
exactly the fields each part uses. Triple braces never escape, so the result is the same whether
or not SES escapes ``{{ }}``: HTML gets the value escaped once, the text part and subject never.
A template author cannot forget to escape a value, and cannot inject raw HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activation.email.campaigns import Campaign
from activation.email.errors import EmailConfigError

#: Template fields the sink adds to the mart's.
SINK_FIELDS = ("unsubscribe_url",)
#: Every body (HTML and text) must link to the unsubscribe page.
REQUIRED_FIELDS = ("unsubscribe_url",)
TEMPLATE_PARTS = {"subject": "subject.txt", "html": "body.html", "text": "body.txt"}
#: The suffix of the HTML-escaped copy of a field in the template data.
HTML_SUFFIX = "__html"

_TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Part:
    """One part of a template: its source, what it references, and what SES gets."""

    kind: str  # subject | html | text
    source: str
    fields: frozenset[str]
    compiled: str


def _compile_part(kind: str, source: str, where: str) -> Part:
    """Check one part's tags and compile it for SES (see the module's documentation)."""
    out: list[str] = []
    fields: set[str] = set()
    depth, pos = 0, 0
    suffix = HTML_SUFFIX if kind == "html" else ""

    def bad(message: str) -> EmailConfigError:
        line = source.count("\n", 0, pos) + 1
        return EmailConfigError(f"{where}, line {line}: {message}")

    for match in _TAG.finditer(source):
        out.append(source[pos : match.start()])
        pos = match.start()
        inner = match.group(1)
        tag = match.group(0)
        if inner.startswith("{") or source.startswith("}", match.end()):
            raise bad(f"{tag}…: triple braces are not allowed (the sink escapes every value)")
        body = inner.strip()
        if body.startswith("#if ") or body.startswith("#if\t"):
            name = body[3:].strip()
            if not _FIELD.match(name):
                raise bad(f"{tag}: #if takes one field name")
            depth += 1
            fields.add(name)
            out.append("{{#if " + name + suffix + "}}")
        elif body == "else":
            if depth == 0:
                raise bad("{{else}} outside {{#if}}")
            out.append("{{else}}")
        elif body == "/if":
            if depth == 0:
                raise bad("{{/if}} without {{#if}}")
            depth -= 1
            out.append("{{/if}}")
        elif _FIELD.match(body):
            fields.add(body)
            out.append("{{{" + body + suffix + "}}}")
        else:
            raise bad(f"{tag}: only {{{{field}}}} and {{{{#if field}}}}…{{{{/if}}}} are supported")
        pos = match.end()
    rest = source[pos:]
    if "{{" in rest:
        pos += rest.index("{{")
        raise bad("'{{' is never closed")
    if depth:
        raise bad("{{#if}} is never closed with {{/if}}")
    out.append(rest)
    return Part(kind, source, frozenset(fields), "".join(out))


@dataclass(frozen=True)
class Template:
    """A template of ``activation/templates/<name>/``, checked and compiled."""

    name: str
    subject: Part
    html: Part
    text: Part

    @property
    def parts(self) -> tuple[Part, Part, Part]:
        return (self.subject, self.html, self.text)

    @property
    def fields(self) -> frozenset[str]:
        return self.subject.fields | self.html.fields | self.text.fields

    @property
    def raw_fields(self) -> frozenset[str]:
        """Fields sent as they are (the subject and text part use them)."""
        return self.subject.fields | self.text.fields

    def ses_name(self, prefix: str) -> str:
        return f"{prefix}{self.name}"

    def ses_template(self, prefix: str) -> dict[str, Any]:
        """The request of SES v2 ``CreateEmailTemplate`` (``UpdateEmailTemplate`` takes the
        same): its name and ``TemplateContent``."""
        return {
            "TemplateName": self.ses_name(prefix),
            "TemplateContent": {
                "Subject": self.subject.compiled,
                "Html": self.html.compiled,
                "Text": self.text.compiled,
            },
        }

    def check_fields(self, available: Iterable[str], where: str = "the mart") -> None:
        """:class:`EmailConfigError` if a part names a field that ``available`` lacks."""
        have = set(available)
        for part in self.parts:
            missing = sorted(part.fields - have)
            if missing:
                names = ", ".join("{{" + m + "}}" for m in missing)
                raise EmailConfigError(
                    f"template {self.name} ({TEMPLATE_PARTS[part.kind]}) uses {names}, "
                    f"which {where} does not have"
                )

    def data(self, values: Mapping[str, str]) -> dict[str, str]:
        """One destination's template data: raw values for the subject and text part, escaped
        copies (``field__html``) for the HTML part; every field present ("" when empty)."""
        data = {name: values.get(name, "") for name in sorted(self.raw_fields)}
        for name in sorted(self.html.fields):
            data[name + HTML_SUFFIX] = html.escape(values.get(name, ""), quote=True)
        return data

    def render(self, values: Mapping[str, str]) -> dict[str, str]:
        """What SES makes of the compiled template and :meth:`data` (subject, html, text)."""
        data = self.data(values)
        return {part.kind: render(part.compiled, data) for part in self.parts}


def load_template(directory: Path, name: str) -> Template:
    folder = Path(directory) / name
    parts: dict[str, Part] = {}
    for kind, filename in TEMPLATE_PARTS.items():
        path = folder / filename
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EmailConfigError(
                f"template {name}: cannot read {path}: {exc.strerror or exc}"
            ) from None
        source = source.replace("\r\n", "\n")
        if kind == "subject":
            source = source.strip()
            if not source or "\n" in source:
                raise EmailConfigError(f"template {name}: {filename} must be one non-empty line")
        parts[kind] = _compile_part(kind, source, f"template {name} ({filename})")
    template = Template(name, parts["subject"], parts["html"], parts["text"])
    for part in (template.html, template.text):
        for required in REQUIRED_FIELDS:
            if required not in part.fields:
                raise EmailConfigError(
                    f"template {name} ({TEMPLATE_PARTS[part.kind]}) must include {{{{{required}}}}}"
                )
    return template


_RENDER = re.compile(r"\{\{\{(\w+)\}\}\}|\{\{#if (\w+)\}\}|\{\{else\}\}|\{\{/if\}\}")
_STANDALONE = re.compile(r"^[ \t]*(\{\{(?:#if \w+|else|/if)\}\})[ \t]*\n", re.M)


def render(compiled: str, data: Mapping[str, Any]) -> str:
    """Render a compiled template the way Handlebars does (the subset the sink emits: triple
    braces, ``#if``/``else``/``/if``, block tags alone on a line taking their line with them).
    A field missing from ``data`` is an error, as in SES (a rendering failure)."""
    compiled = _STANDALONE.sub(r"\1", compiled)
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (parent emits, this branch true)
    emitting = True
    pos = 0
    for match in _RENDER.finditer(compiled):
        if emitting:
            out.append(compiled[pos : match.start()])
        pos = match.end()
        var, cond = match.group(1), match.group(2)
        if var is not None:
            if var not in data:
                raise KeyError(f"template data has no {var!r}")
            if emitting:
                out.append(str(data[var]))
        elif cond is not None:
            if cond not in data:
                raise KeyError(f"template data has no {cond!r}")
            truth = bool(data[cond])
            stack.append((emitting, truth))
            emitting = emitting and truth
        elif match.group(0) == "{{else}}":
            parent, truth = stack[-1]
            emitting = parent and not truth
        else:
            parent, _ = stack.pop()
            emitting = parent
    if emitting:
        out.append(compiled[pos:])
    return "".join(out)


def load_templates(campaigns: Sequence[Campaign], directory: Path) -> dict[str, Template]:
    """The templates the campaigns use, by name."""
    return {c.template: load_template(directory, c.template) for c in campaigns}
