"""Writes docs/configuration.md from the settings structs (`make docs-config`).

Every setting of every part of Airlock is a field of one msgspec struct. This renders them
all: the variable (or TOML key), its type and bounds, its default, and what it is for, read
from the comments beside the field in the source (a comment line right above it, and the
comment at its end). A comment after a blank line heads a section (`# Authentication`).
`python -m tools.configuration_doc --check` exits 1 when the file is out of date;
tests/tools/test_configuration_doc.py runs that check with the tests.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import textwrap
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import msgspec.inspect as mi

from airlock_local.settings import PREFIX as DEMO_PREFIX
from airlock_local.settings import DemoSettings
from request_gateway.settings import PREFIX as GATEWAY_PREFIX
from request_gateway.settings import GatewaySettings
from response_processor.settings import PREFIX as PROCESSOR_PREFIX
from response_processor.settings import ProcessorSettings
from transfer_agent.config import AgentSection, RouteConfig

DOC: Final = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
COMMAND: Final = "make docs-config"


@dataclass(frozen=True)
class Part:
    """One settings struct and how its fields are set."""

    title: str
    struct: type[msgspec.Struct]
    intro: str
    key: Callable[[str], str]  # field name -> what an operator writes
    key_header: str


@dataclass(frozen=True)
class Note:
    """What the source says of one field: its section heading and its description."""

    section: str
    text: str


def _env(prefix: str) -> Callable[[str], str]:
    return lambda name: f"`{prefix}{name.upper()}`"


PARTS: Final = (
    Part(
        "request-gateway (`GATEWAY_*`)",
        GatewaySettings,
        "The request network's API and link worker (`request_gateway.settings`); "
        "[request-gateway.md](request-gateway.md) tells how they work.",
        _env(GATEWAY_PREFIX),
        "variable",
    ),
    Part(
        "response-processor (`PROCESSOR_*`)",
        ProcessorSettings,
        "The response network's admin API, link and job workers "
        "(`response_processor.settings`); [response-processor.md](response-processor.md) "
        "tells how they work.",
        _env(PROCESSOR_PREFIX),
        "variable",
    ),
    Part(
        "transfer-agent: `[agent]`",
        AgentSection,
        "The transfer agent reads one TOML file (`transfer-agent --config FILE`), not the "
        "environment (`transfer_agent.config`); paths in it are relative to the file. "
        "[transfer-agent.md](transfer-agent.md) has an example. The `[agent]` table:",
        lambda name: f"`{name}`",
        "key",
    ),
    Part(
        "transfer-agent: `[[routes]]`",
        RouteConfig,
        "One table per route, at least one: a source drop zone delivered to a destination.",
        lambda name: f"`{name}`",
        "key",
    ),
    Part(
        "make demo (`DEMO_*`)",
        DemoSettings,
        "The local all-in-one stack (`deploy/local`, `airlock_local.settings`); it sets the "
        "services' own variables itself.",
        _env(DEMO_PREFIX),
        "variable",
    ),
)

INTRO: Final = f"""\
# Configuration

<!-- Generated from the settings structs by `{COMMAND}` (python -m tools.configuration_doc).
     Do not edit: change the struct or the comment beside its field, then regenerate. -->

Every setting of every Airlock process, generated from the structs that read them, so it
cannot drift from the code (a test fails when it does).

The services read environment variables, one per field, named by a prefix and the field
(`servicekit.settings`, [servicekit.md](servicekit.md)):

- `NAME_FILE` reads the setting `NAME` from a file instead (Docker and Kubernetes secrets;
  one trailing newline is stripped); setting both is an error;
- any other variable with the service's prefix is an error, so a typo cannot leave a default
  in place silently;
- numbers, booleans (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`), lists (comma-separated
  or a JSON array), objects (JSON) and paths convert from text; an empty value unsets an
  optional setting;
- every problem is reported at once, and never with the value of a secret;
- with `*_ENV=production` a service refuses to start with a secret at its development
  default, unsigned batches, keys it would have to make up, or embedded servers.

The link's own settings (drop zones, keys, timings) are declared once, in
`airlink.endpoint.LinkEndpointSettings`, and read by both services under their own prefix;
[link-protocol.md](link-protocol.md) explains the timings.
"""


def render() -> str:
    """The whole of docs/configuration.md."""
    return INTRO + "".join(render_part(part) for part in PARTS)


def render_part(part: Part) -> str:
    """One part's section: its heading, introduction and a table per source section."""
    fields = {field.name: field for field in mi.type_info(part.struct).fields}  # type: ignore[attr-defined]
    notes = field_notes(part.struct)
    out = [f"\n## {part.title}\n\n{part.intro}\n"]
    for section, names in _sections(part.struct, notes):
        if section:
            out.append(f"\n### {section}\n")
        out.append(f"\n| {part.key_header} | type | default | what for |\n|---|---|---|---|\n")
        for name in names:
            field = fields[name]
            cells = (
                part.key(name),
                describe_type(field.type),
                describe_default(field),
                notes[name].text,
            )
            out.append("| " + " | ".join(_cell(cell) for cell in cells) + " |\n")
    return "".join(out)


def _sections(
    struct: type[msgspec.Struct], notes: dict[str, Note]
) -> Iterator[tuple[str, list[str]]]:
    """Field names grouped by section, in the order the source declares them."""
    grouped: dict[str, list[str]] = {}
    for name in notes:
        grouped.setdefault(notes[name].section, []).append(name)
    missing = set(struct.__struct_fields__) - set(notes)
    assert not missing, f"{struct.__name__}: no source found for {sorted(missing)}"
    yield from grouped.items()


def field_notes(struct: type[msgspec.Struct]) -> dict[str, Note]:
    """Each field's section and description, from the source of the struct and its bases.

    A field a subclass declares again keeps the base's description unless it has its own.
    The fields only a base declares come last, under the base's docstring.
    """
    own = _class_notes(struct, default_section="")
    inherited: dict[str, Note] = {}
    for base in struct.__mro__[1:]:
        if not (isinstance(base, type) and issubclass(base, msgspec.Struct)):
            continue
        if base.__module__.startswith("msgspec"):
            continue
        summary = (inspect.getdoc(base) or "").split("\n")[0].rstrip(".")
        heading = f"`{base.__name__}`: {summary}" if summary else f"`{base.__name__}`"
        for name, note in _class_notes(base, default_section=heading).items():
            inherited.setdefault(name, note)
    notes = {
        name: Note(note.section, note.text or inherited.get(name, note).text)
        for name, note in own.items()
    }
    for name, note in inherited.items():
        notes.setdefault(name, note)
    return notes


def _class_notes(cls: type, *, default_section: str) -> dict[str, Note]:
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    comments = _comments(source)
    (node,) = ast.parse(source).body
    assert isinstance(node, ast.ClassDef)
    notes: dict[str, Note] = {}
    section = default_section
    for statement in node.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        above = _comment_block_above(lines, comments, statement.lineno)
        start = statement.lineno - len(above)
        if above and (start == 1 or not lines[start - 2].strip() or _is_docstring_end(node, start)):
            section, above = " ".join(above), []
        last = statement.end_lineno or statement.lineno
        trailing = [comments[n] for n in range(statement.lineno, last + 1) if n in comments]
        text = " ".join([*above, *trailing])
        notes[statement.target.id] = Note(section, _sentence(text))
    return notes


def _comments(source: str) -> dict[int, str]:
    """The text of each comment, by line number."""
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if not text.startswith(("noqa", "type:", "fmt:")):
                found[token.start[0]] = text.split("# noqa")[0].strip()
    return found


def _comment_block_above(lines: list[str], comments: dict[int, str], lineno: int) -> list[str]:
    block: list[str] = []
    number = lineno - 1
    while number >= 1 and lines[number - 1].lstrip().startswith("#") and number in comments:
        block.insert(0, comments[number])
        number -= 1
    return block


def _is_docstring_end(node: ast.ClassDef, first_comment_line: int) -> bool:
    first = node.body[0]
    is_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    return is_docstring and first.end_lineno == first_comment_line - 1


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else ""


def describe_type(info: Any) -> str:
    """A field's type for people: `integer ≥ 1`, `one of a, b`, `path, optional`."""
    secret = False
    while isinstance(info, mi.Metadata):
        secret = secret or bool((info.extra or {}).get("secret"))
        info = info.type
    if secret:
        return "secret text"
    if isinstance(info, mi.UnionType):
        kinds = [t for t in info.types if not isinstance(t, mi.NoneType)]
        inner = " or ".join(describe_type(t) for t in kinds)
        return f"{inner}, optional" if len(kinds) < len(info.types) else inner
    if isinstance(info, mi.LiteralType):
        return "one of " + ", ".join(f"`{value}`" for value in info.values)
    if isinstance(info, (mi.IntType, mi.FloatType)):
        name = "integer" if isinstance(info, mi.IntType) else "number"
        bounds = [
            f"{symbol} {_number(value)}"
            for symbol, value in (
                ("≥", info.ge),
                ("&gt;", info.gt),
                ("≤", info.le),
                ("&lt;", info.lt),
            )
            if value is not None
        ]
        return " ".join([name, *bounds]) if len(bounds) < 2 else f"{name} {bounds[0]}, {bounds[1]}"
    if isinstance(info, mi.StrType):
        return f"text matching `{info.pattern}`" if info.pattern else "text"
    if isinstance(info, mi.BoolType):
        return "boolean"
    if isinstance(info, mi.CustomType) and issubclass(info.cls, Path):
        return "path"
    if isinstance(info, mi.ListType):
        least = f" (at least {info.min_length})" if info.min_length else ""
        return f"list of {describe_type(info.item_type)}{least}"
    if isinstance(info, mi.DictType):
        return f"object: {describe_type(info.key_type)} → {describe_type(info.value_type)}"
    raise TypeError(f"no description for the settings type {info!r}")


def describe_default(field: Any) -> str:
    """A field's default for people: `30`, `unset`, `empty`, `required`."""
    if field.required:
        return "required"
    default = field.default_factory() if field.default is msgspec.NODEFAULT else field.default
    if isinstance(field.type, mi.Metadata) and (field.type.extra or {}).get("secret"):
        return "a development value, refused in production"
    if default is None:
        return "unset"
    if default in ("", [], {}):
        return "empty"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, (int, float)):
        return f"`{_number(default)}`"
    return f"`{default}`"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    """Write docs/configuration.md, or with `--check` only say whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    wanted = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != wanted:
            print(f"{DOC} is out of date with the settings structs: run `{COMMAND}`")
            return 1
        return 0
    DOC.write_text(wanted)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
