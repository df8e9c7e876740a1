"""CycloneDX SBOMs: what ``edgekit overlay build`` ships, and what ``edgekit audit --sbom`` found in a tree.

Both are CycloneDX 1.6 JSON (cyclonedx-python-lib), chosen over 1.7 because more consumers read
it. Reproducible like the overlay itself: the timestamp is SOURCE_DATE_EPOCH (else the epoch),
the serial number is a uuid5 over the components and that timestamp rather than a random one,
every bom-ref is derived from a path or a purl, and the library writes components, properties
and dependencies sorted. The library is imported only here, and only while a document is made:
the CLI's start-up stays light (tests/test_cli_startup.py).

The overlay's SBOM (:func:`overlay_sbom`): the overlay as the described component; the agent
zipapp as an application; every other file of the overlay with its SHA-256; and the runtime
wheels `edgekit provision` installs on devices, per device Python. The agent's purl is
``pkg:generic/edgekit-agent@<version>``: "edgekit" on PyPI is another project, so a
``pkg:pypi/edgekit`` purl would match its advisories instead. The wheels have no hashes: the
overlay build downloads nothing, and which wheel file a device gets depends on its CPU and glibc.

An audited tree's SBOM (:class:`TreeInventory`): Python distributions (``*.dist-info/METADATA``),
Debian packages (``var/lib/dpkg/status``, licences from ``usr/share/doc/<package>/copyright``)
and every file with an ``engine/`` or ``nvidia/`` finding, with the rules as properties. Only
those metadata files are read, while the audit walks the tree once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import Parser
from importlib.metadata import metadata, version
from typing import TYPE_CHECKING

from edgekit.audit.findings import Finding
from edgekit.audit.licences import READ_CAP, copyleft_spdx_ids
from edgekit.audit.tree import Entry
from edgekit.wheels import ONNXRUNTIME_PINS, parse_pin

if TYPE_CHECKING:
    from cyclonedx.model.component import Component
    from cyclonedx.model.license import License

# The wheels' licences as their PyPI metadata states them for the pinned versions
# (edgekit.wheels.ONNXRUNTIME_PINS); kept here because the build reads nothing from the network.
WHEEL_LICENCES = {
    "flatbuffers": "Apache-2.0",
    "onnxruntime": "MIT",
    "packaging": "Apache-2.0 OR BSD-2-Clause",
    "protobuf": "BSD-3-Clause",
}
# Debian short names that are not SPDX ids (the GNU ones are normalised by edgekit.audit.licences).
DEBIAN_LICENCES = {"expat": "MIT", "apache-2": "Apache-2.0"}
PROPERTY_PATH = "edgekit:path"
PROPERTY_PYTHON = "edgekit:device-python"
PROPERTY_RULE = "edgekit:audit-rule"
# Findings of these families make a file a component of an audited tree's SBOM; licence
# findings are already on the packages' licences.
FILE_FAMILIES = ("engine", "nvidia")

_DIST_INFO = re.compile(r"(?:^|/)(?P<folder>[^/]+\.dist-info)/METADATA$")
_DEBIAN_COPYRIGHT = re.compile(r"(?:^|/)usr/share/doc/(?P<package>[^/]+)/copyright$")
_DPKG_STATUS = re.compile(r"(?:^|/)var/lib/dpkg/status$")
# etc/os-release is usually a link to this one, and links are not entries.
_OS_RELEASE = re.compile(r"(?:^|/)(?:usr/lib|etc)/os-release$")
# DEP-5 License values: the licence names between the operators.
_DEP5_OPERATORS = re.compile(r"\s+(?:and|or)\s+|[(),]", re.IGNORECASE)


@dataclass(frozen=True)
class Part:
    """One component, in edgekit's terms; :func:`render` makes the CycloneDX one."""

    bom_ref: str
    # A CycloneDX component type: application, library, file, operating-system...
    kind: str
    name: str
    version: str | None = None
    sha256: str | None = None
    purl: str | None = None
    # One SPDX expression, id or licence name, or several ids and names that all apply.
    licences: tuple[str, ...] = ()
    description: str | None = None
    properties: tuple[tuple[str, str], ...] = ()


def render(subject: Part, parts: Iterable[Part]) -> bytes:
    """The CycloneDX JSON document describing ``subject`` made of ``parts``, byte for byte reproducible."""
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output import make_outputter
    from cyclonedx.schema import OutputFormat, SchemaVersion

    components = sorted(parts, key=lambda part: part.bom_ref)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    content = json.dumps([epoch, asdict(subject), [asdict(part) for part in components]], sort_keys=True)
    serial = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edgekit:sbom:" + hashlib.sha256(content.encode()).hexdigest())
    edgekit = Component(
        type=ComponentType.APPLICATION, name="edgekit", version=version("edgekit"), bom_ref="tool:edgekit"
    )
    root = _component(subject)
    bom = Bom(
        serial_number=serial,
        metadata=BomMetaData(
            component=root,
            timestamp=datetime.fromtimestamp(epoch, tz=UTC),
            tools=ToolRepository(components=[edgekit]),
        ),
        components=[_component(part) for part in components],
    )
    # The subject is made of every part: a flat graph, which also keeps the library from warning
    # that the described component has no dependencies.
    bom.register_dependency(root, bom.components)
    text = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6).output_as_string(indent=2)
    return (text + "\n").encode()


def _component(part: Part) -> Component:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    return Component(
        bom_ref=part.bom_ref,
        type=ComponentType(part.kind),
        name=part.name,
        version=part.version,
        description=part.description,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=part.sha256)] if part.sha256 else None,
        purl=PackageURL.from_string(part.purl) if part.purl else None,
        licenses=_licences(part.licences),
        properties=[Property(name=name, value=value) for name, value in part.properties],
    )


def _licences(values: tuple[str, ...]) -> list[License]:
    from cyclonedx.contrib.license.exceptions import InvalidSpdxLicenseException
    from cyclonedx.contrib.license.factories import LicenseFactory

    factory = LicenseFactory()
    if len(values) == 1:
        return [factory.make_from_string(values[0])]
    # CycloneDX takes either one expression or a list of licences, so each of several is an SPDX
    # id or a name, never an expression.
    found: list[License] = []
    for value in values:
        try:
            found.append(factory.make_with_id(value))
        except InvalidSpdxLicenseException:
            found.append(factory.make_with_name(value))
    return found


def overlay_sbom(files: Mapping[str, bytes], agent_path: str) -> bytes:
    """The SBOM of an overlay holding ``files`` (by rootfs path), the agent zipapp at ``agent_path``."""
    edgekit = version("edgekit")
    own = metadata("edgekit")
    # pyproject's licence: License-Expression when the build backend writes one, else License.
    licences = tuple(str(value) for value in (own.get_all("License-Expression") or own.get_all("License") or [])[:1])
    subject = Part("edgekit-overlay", "application", "edgekit-overlay", edgekit, licences=licences)
    parts = [
        Part(
            f"file:{path}",
            "file",
            path,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        for path, data in files.items()
        if path != agent_path
    ]
    parts.append(
        Part(
            f"file:{agent_path}",
            "application",
            "edgekit-agent",
            edgekit,
            sha256=hashlib.sha256(files[agent_path]).hexdigest(),
            purl=f"pkg:generic/edgekit-agent@{edgekit}",
            licences=licences,
            description="The edgekit device agent (zipapp), run by the camera service.",
            properties=((PROPERTY_PATH, agent_path),),
        )
    )
    return render(subject, parts + runtime_wheels())


def runtime_wheels() -> list[Part]:
    """The pinned wheels provision installs on devices, once each, with the device Pythons that get them."""
    pythons: dict[tuple[str, str], list[str]] = {}
    for python, pins in ONNXRUNTIME_PINS.items():
        for pin in pins:
            pythons.setdefault(parse_pin(pin), []).append(python)
    parts = []
    for (name, pinned), used_by in pythons.items():
        purl = _pypi_purl(name, pinned)
        parts.append(
            Part(
                purl,
                "library",
                name,
                pinned,
                purl=purl,
                licences=(WHEEL_LICENCES[name],),
                description="Installed on the device by edgekit provision (a wheel, not part of the overlay).",
                properties=tuple((PROPERTY_PYTHON, python) for python in used_by),
            )
        )
    return parts


def _pypi_purl(name: str, package_version: str) -> str:
    from packageurl import PackageURL

    # The purl spec's PyPI names: lower case, "-" for "_"; packageurl-python applies it.
    return str(PackageURL(type="pypi", name=name, version=package_version).to_string())


@dataclass
class TreeInventory:
    """What an audited tree holds by its metadata files; :meth:`see` each entry as the audit walks."""

    distributions: list[Part] = field(default_factory=list)
    # Package -> licences, from its copyright file.
    copyrights: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dpkg_status: str | None = None
    os_id: str | None = None

    def see(self, entry: Entry) -> None:
        if python := _DIST_INFO.search(entry.path):
            self.distributions.append(_distribution(entry, python["folder"]))
        elif debian := _DEBIAN_COPYRIGHT.search(entry.path):
            self.copyrights[debian["package"]] = _copyright_licences(_text(entry, READ_CAP))
        elif _DPKG_STATUS.search(entry.path):
            # The status file of a whole rootfs is a few MiB and is read whole.
            self.dpkg_status = _text(entry)
        elif _OS_RELEASE.search(entry.path) and self.os_id is None:
            found = re.search(r"(?m)^ID=\"?([a-z0-9._-]+)", _text(entry, READ_CAP))
            self.os_id = found[1] if found else None

    def packages(self) -> list[Part]:
        """Installed Debian packages; the purl's namespace is the tree's distribution (os-release ID)."""
        from packageurl import PackageURL

        parts = []
        for paragraph in re.split(r"\n[ \t]*\n", self.dpkg_status or ""):
            fields = Parser().parsestr(paragraph, headersonly=True)
            name, package_version = fields.get("Package"), fields.get("Version")
            # Removed packages whose conffiles remain ("deinstall ok config-files") hold nothing.
            if not name or not package_version or not (fields.get("Status") or "").strip().endswith(" installed"):
                continue
            name, package_version = name.strip(), package_version.strip()
            arch = (fields.get("Architecture") or "").strip()
            purl = str(
                PackageURL(
                    type="deb",
                    namespace=self.os_id or "debian",
                    name=name,
                    version=package_version,
                    qualifiers={"arch": arch} if arch else None,
                ).to_string()
            )
            parts.append(
                Part(purl, "library", name, package_version, purl=purl, licences=self.copyrights.get(name, ()))
            )
        return parts

    def sbom(self, name: str, findings: Iterable[Finding]) -> bytes:
        """The SBOM of the tree called ``name``: its packages and the files with engine or NVIDIA findings."""
        rules: dict[str, list[str]] = {}
        for finding in findings:
            if finding.family in FILE_FAMILIES:
                rules.setdefault(finding.path, []).append(finding.rule)
        files = [
            Part(
                f"file:{path}",
                "file",
                path,
                properties=tuple((PROPERTY_RULE, rule) for rule in found),
            )
            for path, found in rules.items()
        ]
        return render(Part("tree", "file", name), self.distributions + self.packages() + files)


def _text(entry: Entry, cap: int = -1) -> str:
    return entry.read(0, cap).decode("utf-8", "replace").replace("\r\n", "\n")


def _distribution(entry: Entry, folder: str) -> Part:
    message = Parser().parsestr(_text(entry, READ_CAP), headersonly=True)
    path = entry.path.rsplit("/", 1)[0]
    name = (message.get("Name") or folder.split("-", 1)[0]).strip()
    package_version = (message.get("Version") or "").strip() or None
    purl = _pypi_purl(name, package_version) if package_version else None
    return Part(
        f"path:{path}",
        "library",
        name,
        package_version,
        purl=purl,
        licences=_python_licences(message),
        properties=((PROPERTY_PATH, path),),
    )


def _python_licences(message: Message) -> tuple[str, ...]:
    # License-Expression is authoritative (PEP 639); the free-text License field is taken when it
    # is one short line, and the classifiers' licence names otherwise.
    if expression := (message.get("License-Expression") or "").strip():
        return (expression,)
    text = (message.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 100 and text.upper() != "UNKNOWN":
        return (text,)
    classifiers = message.get_all("Classifier") or []
    return tuple(dict.fromkeys(c.rsplit("::", 1)[1].strip() for c in classifiers if c.strip().startswith("License ::")))


def _copyright_licences(text: str) -> tuple[str, ...]:
    first_line = text.lstrip().split("\n", 1)[0]
    if not re.match(r"(?i)format(?:-specification)?:\s*\S", first_line):
        # Free-form: only the GNU licences are recognised in prose.
        return tuple(sorted(copyleft_spdx_ids(text)))
    names: dict[str, None] = {}
    for value in re.finditer(r"(?im)^license:[ \t]*(\S.*)$", text):
        for name in _DEP5_OPERATORS.split(value[1]):
            if name := name.strip():
                names[_debian_licence(name)] = None
    return tuple(names)


def _debian_licence(name: str) -> str:
    ids = copyleft_spdx_ids(name)
    if len(ids) == 1:
        return ids.pop()
    return DEBIAN_LICENCES.get(name.lower(), name)
