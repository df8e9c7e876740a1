"""GNU copyleft licences (GPL, LGPL, AGPL) that Python distributions and Debian packages declare.

Only metadata files are read, chosen by path before any byte is read:

- ``*.dist-info/METADATA``, ``*.egg-info/PKG-INFO`` and the single-file ``*.egg-info`` that
  distutils installs. ``License-Expression`` (core metadata 2.4) is authoritative when present,
  as PEP 639 makes it. Without it both ``License`` and the ``License ::`` classifiers are read:
  the free-text field often says "UNKNOWN" or "see LICENSE" while a classifier carries the
  licence, so falling back only on an absent field would miss them.
- ``usr/share/doc/<package>/copyright``: in the DEP-5 machine-readable format the first line of
  every ``License:`` field (the short name or expression) is authoritative and the licence texts
  under it are not read; a free-form file is searched for licence names as prose.

Names are normalised to SPDX ids (:func:`copyleft_spdx_ids`). A version with no "or later" and no
"only" is read as "-only", as Debian's short names ("GPL-2") and SPDX's deprecated ids ("GPL-2.0")
mean; a name with no version at all is "any version", as the licences themselves say ("you may
choose any version ever published"): GPL-1.0-or-later, LGPL-2.0-or-later, AGPL-3.0-or-later.

One finding per file and family: ``licence/gpl``, ``licence/lgpl``, ``licence/agpl``. A licence
offered only as an alternative to a known non-copyleft one ("MIT OR GPL-2.0-only", Perl's
"Artistic or GPL-1+") is reported under its own rule, ``licence/dual``, so that a policy can allow
it without allowing copyleft; an alternative that is not known to be permissive (a commercial
``LicenseRef``) does not count, because taking it has conditions of its own. Only structured
expressions (``License-Expression`` and DEP-5 ``License:``) are read as choices; prose is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser

from edgekit.audit.findings import Finding
from edgekit.audit.tree import Entry

# Metadata files are small; a cap keeps a huge or hostile file from being read whole.
READ_CAP = 1 << 20

_PYTHON_METADATA = re.compile(r"(?:^|/)(?P<folder>[^/]+)\.(?:dist-info/METADATA|egg-info/PKG-INFO|egg-info)$")
_DEBIAN_COPYRIGHT = re.compile(r"(?:^|/)usr/share/doc/(?P<package>[^/]+)/copyright$")

# The versions each family has; another number ("GPL-2.1") is a typo and reads as no version.
_VERSIONS = {"gpl": ("1.0", "2.0", "3.0"), "lgpl": ("2.0", "2.1", "3.0"), "agpl": ("1.0", "3.0")}
_ANY_VERSION = {"gpl": "GPL-1.0-or-later", "lgpl": "LGPL-2.0-or-later", "agpl": "AGPL-3.0-or-later"}

# Long names before abbreviations, and "Lesser"/"Affero" before plain "General", so that each
# mention is read once as the most specific family. Plain "General Public License" needs "GNU":
# the LGPL's own text speaks of "the ordinary General Public License".
_NAME = re.compile(
    r"(?:GNU\s+)?Affero\s+General\s+Public\s+Licen[cs]e"
    r"|(?:GNU\s+)?(?:Library\s+or\s+Lesser|Lesser|Library)\s+General\s+Public\s+Licen[cs]e"
    r"|GNU\s+General\s+Public\s+Licen[cs]e"
    r"|\b(?:AGPL|LGPL|GPL)(?=[\dv\s\-+,.;:()/'\"]|$)",
    re.IGNORECASE,
)
# A version right after the name: "GPLv3", "GPL-2+", "GPL 2", "License, version 2", "License v3".
_VERSION_AFTER = re.compile(
    r"\s*(?:[,(]\s*)?(?:v(?:ersion)?\.?\s*|-\s*)?(?P<version>[123](?:\.[01])?)(?![\d])(?P<plus>\+)?", re.IGNORECASE
)
# A version further on in the same sentence: "...; either version 2 of the License, ...".
_VERSION_LATER = re.compile(r"\b(?:version\s+|v)(?P<version>[123](?:\.[01])?)(?![\d])(?P<plus>\+)?", re.IGNORECASE)
_OR_LATER = re.compile(
    r"\bor\s+(?:\(at\s+your\s+option\)\s+)?(?:any\s+)?(?:later|newer|greater)(?:\s+version)?\b|-or-later\b|\band\s+later\b",
    re.IGNORECASE,
)
_ONLY = re.compile(r"\bonly\b", re.IGNORECASE)
# What a mention's version may be read from: the rest of its sentence, at most this long.
_WINDOW = 200
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n[ \t]*\n")

# A full licence text: its heading names the licence, and its body names the other GNU licences
# ("use the GNU Lesser General Public License instead", "Use with the GNU Affero ...") and holds
# the "either version N ... or later" template, so the body is dropped and the heading kept. The
# body ends at the paragraph holding the last of these markers, or with the text.
_FULL_TEXT_HEADING = re.compile(
    r"GNU (?:(?P<kind>AFFERO|LESSER|LIBRARY) )?GENERAL PUBLIC LICENSE\s*\n\s*Version (?P<version>[123](?:\.[01])?)"
)
_FULL_TEXT_ENDS = ("END OF TERMS AND CONDITIONS", "instead of this License.", "That's all there is to it!")
_PARAGRAPH_END = re.compile(r"\n[ \t]*\n")

# Licences that let a recipient take the software without copyleft conditions, as SPDX ids and
# Debian short names (lower case); "Artistic" is here because Perl offers it beside the GPL.
_PERMISSIVE = frozenset(
    {
        "0bsd", "apache", "apache-2", "apache-2.0", "artistic", "artistic-1.0", "artistic-1.0-perl",
        "artistic-2.0", "bsd", "bsd-2-clause", "bsd-3-clause", "bsl-1.0", "cc0", "cc0-1.0", "expat",
        "isc", "mit", "mit-0", "psf-2.0", "public-domain", "python-2.0", "unlicense", "x11", "zlib",
    }
)  # fmt: skip

_FAMILY_NAMES = {"agpl": "AGPL", "gpl": "GPL", "lgpl": "LGPL"}


@dataclass(frozen=True)
class _Mention:
    family: str
    version: str | None
    # True: "or later" stated; False: "only" stated; None: neither.
    later: bool | None
    words: str


def copyleft_spdx_ids(text: str) -> set[str]:
    """The GNU copyleft licences a licence name, expression or prose names, as SPDX ids.

    Permissive and other licences are not returned: ``"MIT OR GPL-2+"`` gives ``{"GPL-2.0-or-later"}``.
    """
    return set(_named_ids(text))


def _named_ids(text: str) -> dict[str, str]:
    """Each SPDX id named in ``text`` with the words it was read from."""
    return _resolve(_mentions(text))


def _mentions(text: str) -> list[_Mention]:
    found: list[_Mention] = []
    for match in _FULL_TEXT_HEADING.finditer(text):
        kind = (match["kind"] or "").lower()
        family = "agpl" if kind == "affero" else "lgpl" if kind else "gpl"
        found.append(_Mention(family, _version(family, match["version"]), None, _collapse(match[0])))
    text = _without_full_texts(text)
    names = list(_NAME.finditer(text))
    for index, name in enumerate(names):
        stop = names[index + 1].start() if index + 1 < len(names) else len(text)
        window = text[name.end() : min(stop, name.end() + _WINDOW)]
        end = _SENTENCE_END.search(window)
        window = window[: end.start()] if end else window
        found.append(_mention(text, name, window))
    return found


def _without_full_texts(text: str) -> str:
    while heading := _FULL_TEXT_HEADING.search(text):
        ends = [text.find(marker, heading.end()) for marker in _FULL_TEXT_ENDS]
        last = max(ends)
        if last < 0:
            return text[: heading.start()]
        paragraph_end = _PARAGRAPH_END.search(text, last)
        text = text[: heading.start()] + "\n\n" + (text[paragraph_end.end() :] if paragraph_end else "")
    return text


def _mention(text: str, name: re.Match[str], window: str) -> _Mention:
    lowered = name[0].lower()
    family = (
        "agpl"
        if "affero" in lowered or lowered.startswith("agpl")
        else "lgpl"
        if "lesser" in lowered or "library" in lowered or lowered.startswith("lgpl")
        else "gpl"
    )
    version = _VERSION_AFTER.match(window) or _VERSION_LATER.search(window)
    if version is None:
        return _Mention(family, None, None, _collapse(name[0]))
    rest = window[version.end() :]
    # The words shown in the reason run from the name to the last thing read: version and scope.
    read_to = version.end()
    later: bool | None = None
    if version["plus"]:
        later = True
    elif scope := _OR_LATER.search(rest):
        later, read_to = True, version.end() + scope.end()
    elif scope := _ONLY.search(rest):
        later, read_to = False, version.end() + scope.end()
    words = text[name.start() : name.end() + read_to]
    return _Mention(family, _version(family, version["version"]), later, _collapse(words))


def _version(family: str, number: str) -> str | None:
    version = number if "." in number else f"{number}.0"
    return version if version in _VERSIONS[family] else None


def _resolve(mentions: list[_Mention]) -> dict[str, str]:
    """SPDX ids from mentions: a version whose scope is stated anywhere takes that scope, one never
    stated is "-only", and a name with no version counts only where no version of it is named (the
    "You should have received a copy of the GNU General Public License" after the grant)."""
    ids: dict[str, str] = {}
    for family in _VERSIONS:
        of_family = [m for m in mentions if m.family == family]
        versioned = [m for m in of_family if m.version is not None]
        if of_family and not versioned:
            ids.setdefault(_ANY_VERSION[family], of_family[0].words)
        for version in dict.fromkeys(m.version for m in versioned):
            same = [m for m in versioned if m.version == version]
            stated = [m for m in same if m.later is not None] or same
            for mention in stated:
                suffix = "or-later" if mention.later else "only"
                ids.setdefault(f"{family.upper()}-{version}-{suffix}", mention.words)
    return ids


def _collapse(words: str, limit: int = 200) -> str:
    words = " ".join(words.split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


@dataclass(frozen=True)
class _Terms:
    """What an expression obliges: ``required`` copyleft ids cannot be avoided, ``optional`` ones
    can by choosing a permissive alternative; ``free`` says the whole can be taken permissively."""

    required: frozenset[str]
    optional: frozenset[str]
    free: bool

    def both(self, other: _Terms) -> _Terms:
        required = self.required | other.required
        return _Terms(required, (self.optional | other.optional) - required, self.free and other.free)

    def either(self, other: _Terms) -> _Terms:
        if self.free or other.free:
            return _Terms(frozenset(), self.required | self.optional | other.required | other.optional, True)
        # With no permissive way out every copyleft side is reported: choosing among them still
        # means taking a copyleft licence.
        return _Terms(
            self.required | other.required, (self.optional | other.optional) - self.required - other.required, False
        )


def _leaf_terms(words: str) -> _Terms:
    ids = frozenset(copyleft_spdx_ids(words))
    return _Terms(ids, frozenset(), not ids and words.split()[0].lower() in _PERMISSIVE)


class _Expression:
    """SPDX expressions and DEP-5 ``License:`` values: ``and``/``or`` in any case, parentheses, and
    DEP-5's top-level ", and"/", or". ``with`` and its exception stay part of the licence's words."""

    def __init__(self, text: str) -> None:
        self.tokens = re.findall(r"[(),]|[^\s(),]+", text)
        self.position = 0

    def parse(self) -> _Terms:
        terms = self._top()
        if self.position != len(self.tokens):
            raise ValueError("unbalanced expression")
        return terms

    def _peek(self) -> str:
        return self.tokens[self.position].lower() if self.position < len(self.tokens) else ""

    def _top(self) -> _Terms:
        terms = self._any()
        while self._peek() == ",":
            self.position += 1
            operator = self._peek()
            if operator in ("and", "or"):
                self.position += 1
            terms = terms.either(self._any()) if operator == "or" else terms.both(self._any())
        return terms

    def _any(self) -> _Terms:
        terms = self._all()
        while self._peek() == "or":
            self.position += 1
            terms = terms.either(self._all())
        return terms

    def _all(self) -> _Terms:
        terms = self._one()
        while self._peek() == "and":
            self.position += 1
            terms = terms.both(self._one())
        return terms

    def _one(self) -> _Terms:
        if self._peek() == "(":
            self.position += 1
            terms = self._top()
            if self._peek() != ")":
                raise ValueError("unbalanced expression")
            self.position += 1
            return terms
        start = self.position
        while self._peek() not in ("", "(", ")", ",", "and", "or"):
            self.position += 1
        if start == self.position:
            raise ValueError("expected a licence")
        return _leaf_terms(" ".join(self.tokens[start : self.position]))


def _expression_terms(text: str) -> _Terms:
    try:
        return _Expression(text).parse()
    except ValueError:
        # A value that is not a well-formed expression is still a licence name to read.
        return _leaf_terms(text)


@dataclass(frozen=True)
class _Declaration:
    # Where in the file, e.g. "METADATA License-Expression", and the words found there.
    where: str
    words: str
    required: frozenset[str]
    optional: frozenset[str] = frozenset()


def _expression(where: str, text: str) -> _Declaration:
    terms = _expression_terms(text)
    return _Declaration(where, _collapse(text), terms.required, terms.optional)


def _field(where: str, text: str) -> list[_Declaration]:
    ids = frozenset(copyleft_spdx_ids(text))
    return [_Declaration(where, _collapse(text), ids)] if ids else []


def _prose(where: str, text: str) -> list[_Declaration]:
    # One declaration per id, each with the words it was read from: a whole file is too long to show.
    return [_Declaration(where, words, frozenset({spdx})) for spdx, words in _named_ids(text).items()]


def check(entry: Entry) -> Iterator[Finding]:
    """Findings for the GNU copyleft licences a metadata file declares; other files are not read."""
    if python := _PYTHON_METADATA.search(entry.path):
        package, declarations = _python(entry, python["folder"])
    elif debian := _DEBIAN_COPYRIGHT.search(entry.path):
        package, declarations = debian["package"], _debian(_text(entry))
    else:
        return
    yield from _findings(entry.path, package, declarations)


def _text(entry: Entry) -> str:
    return entry.read(0, READ_CAP).decode("utf-8", "replace").replace("\r\n", "\n")


def _python(entry: Entry, folder: str) -> tuple[str, list[_Declaration]]:
    # Headers only: the long description after the blank line is the project's prose, not metadata.
    message = Parser().parsestr(_text(entry), headersonly=True)
    label = "PKG-INFO" if entry.path.endswith(("PKG-INFO", ".egg-info")) else "METADATA"
    name, version = message.get("Name"), message.get("Version")
    package = f"{name.strip()}=={version.strip()}" if name and version else (name or folder).strip()
    if expression := message.get("License-Expression"):
        return package, [_expression(f"{label} License-Expression", expression.strip())]
    declarations = _field(f"{label} License", message.get("License") or "")
    for classifier in message.get_all("Classifier") or []:
        if classifier.strip().startswith("License ::"):
            declarations += _field(f"{label} Classifier", classifier)
    return package, declarations


def _debian(text: str) -> list[_Declaration]:
    first_line = text.lstrip().split("\n", 1)[0]
    if not re.match(r"(?i)format(?:-specification)?:\s*\S", first_line):
        return _prose("copyright text", text)
    # Field names are case-insensitive; continuation lines start with a space and never match.
    return [
        _expression("DEP-5 License", field[1].strip()) for field in re.finditer(r"(?im)^license:[ \t]*(\S.*)$", text)
    ]


def _family(spdx: str) -> str:
    return spdx.split("-", 1)[0].lower()


def _findings(path: str, package: str, declarations: list[_Declaration]) -> Iterator[Finding]:
    # rule -> (ids, notes), notes deduplicated in file order: ten Files paragraphs under "GPL-2+"
    # are one note.
    found: dict[str, tuple[set[str], dict[str, None]]] = {}
    for declaration in declarations:
        for family in sorted({_family(spdx) for spdx in declaration.required}):
            ids = {spdx for spdx in declaration.required if _family(spdx) == family}
            _add(found, f"licence/{family}", ids, declaration)
        if declaration.optional:
            _add(found, "licence/dual", set(declaration.optional), declaration)
    for rule in sorted(found):
        ids, notes = found[rule]
        listed = ", ".join(sorted(ids))
        if rule == "licence/dual":
            reason = f"offers {listed} only beside a permissive alternative ({'; '.join(notes)})"
        else:
            family = _FAMILY_NAMES[rule.split("/", 1)[1]]
            reason = f"declares the GNU {family} {listed} ({'; '.join(notes)})"
        yield Finding(path=path, rule=rule, reason=reason, package=package)


def _add(
    found: dict[str, tuple[set[str], dict[str, None]]], rule: str, ids: set[str], declaration: _Declaration
) -> None:
    listed = ", ".join(sorted(ids))
    note = f"{declaration.where}: {declaration.words}"
    if declaration.words != listed:
        note += f" -> {listed}"
    ids_of_rule, notes = found.setdefault(rule, (set(), {}))
    ids_of_rule |= ids
    notes[note] = None
