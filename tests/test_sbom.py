"""CycloneDX SBOMs: the overlay's (written into it, reproducible, schema-valid, listing the agent,
every file and the device's wheels) and an audited tree's (`edgekit audit --sbom`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from test_audit import plan, run_cli

from edgekit.audit.policy import BUILT_IN
from edgekit.audit.scan import audit
from edgekit.overlay import AGENT_PATH, MANIFEST_PATH, SBOM_PATH, build_overlay
from edgekit.sbom import WHEEL_LICENCES, TreeInventory
from edgekit.wheels import ONNXRUNTIME_PINS, parse_pin


def valid(text: str) -> dict[str, Any]:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, error
    document: dict[str, Any] = json.loads(text)
    return document


def by_ref(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {component["bom-ref"]: component for component in document["components"]}


def licences(component: dict[str, Any]) -> list[str]:
    return [
        entry.get("expression") or entry["license"].get("id") or entry["license"]["name"]
        for entry in component.get("licenses", [])
    ]


def test_the_overlay_sbom_is_reproducible_and_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_overlay(tmp_path / "a")
    build_overlay(tmp_path / "b")
    first = (tmp_path / "a" / SBOM_PATH).read_bytes()
    assert first == (tmp_path / "b" / SBOM_PATH).read_bytes()
    document = valid(first.decode())
    assert document["specVersion"] == "1.6" and document["metadata"]["timestamp"].startswith("1970-01-01T00:00:00")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    build_overlay(tmp_path / "c")
    dated = json.loads((tmp_path / "c" / SBOM_PATH).read_text())
    assert dated["metadata"]["timestamp"].startswith("2023-11-14T22:13:20")
    assert dated["serialNumber"] != document["serialNumber"]


def test_the_overlay_sbom_lists_the_agent_every_file_and_the_device_wheels(tmp_path: Path) -> None:
    root = tmp_path / "overlay"
    built = build_overlay(root)
    document = valid((root / SBOM_PATH).read_text())
    components = by_ref(document)
    agent = components[f"file:{AGENT_PATH}"]
    assert agent["name"] == "edgekit-agent" and agent["type"] == "application"
    assert agent["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256((root / AGENT_PATH).read_bytes()).hexdigest()}
    ]
    assert agent["purl"].startswith("pkg:generic/edgekit-agent@") and licences(agent) == ["Apache-2.0"]
    # Every file but the SBOM itself and the manifest, which lists the SBOM.
    listed = {ref.removeprefix("file:") for ref in components if ref.startswith("file:")}
    assert listed == {item.path for item in built.files} - {SBOM_PATH, MANIFEST_PATH}
    for item in built.files:
        if item.path in listed and item.path != AGENT_PATH:
            assert components[f"file:{item.path}"]["hashes"][0]["content"] == item.sha256
    manifest = json.loads((root / MANIFEST_PATH).read_text())
    assert manifest["files"][SBOM_PATH] == hashlib.sha256((root / SBOM_PATH).read_bytes()).hexdigest()
    pins = {parse_pin(pin) for pins in ONNXRUNTIME_PINS.values() for pin in pins}
    wheels = {(c["name"], c["version"]): c for c in document["components"] if c.get("purl", "").startswith("pkg:pypi/")}
    assert set(wheels) == pins
    onnxruntime = wheels[("onnxruntime", ONNXRUNTIME_PINS["3.8"][0].split("==")[1])]
    assert onnxruntime["purl"] == f"pkg:pypi/onnxruntime@{onnxruntime['version']}" and licences(onnxruntime) == ["MIT"]
    assert {p["value"] for p in onnxruntime["properties"] if p["name"] == "edgekit:device-python"} == {"3.8"}
    assert {name for name, _ in pins} <= set(WHEEL_LICENCES)


DPKG_STATUS = """\
Package: zlib1g
Status: install ok installed
Architecture: arm64
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime

Package: bash
Status: install ok installed
Architecture: arm64
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell

Package: gone
Status: deinstall ok config-files
Architecture: arm64
Version: 1.0
"""

BASH_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bash

Files: *
Copyright: 1987-2022 Free Software Foundation, Inc.
License: GPL-3+

Files: debian/*
License: GPL-2+ or Expat
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    dist = root / "usr/lib/python3/dist-packages/Tiny_Lib-2.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: Tiny_Lib\nVersion: 2.0\nLicense: MIT\n\nAbout.\n")
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(DPKG_STATUS)
    (root / "usr/share/doc/bash").mkdir(parents=True)
    (root / "usr/share/doc/bash/copyright").write_text(BASH_COPYRIGHT)
    (root / "opt/app").mkdir(parents=True)
    (root / "opt/app/model.engine").write_bytes(plan())
    return root


def tree_sbom(root: Path) -> bytes:
    inventory = TreeInventory()
    report = audit(root, BUILT_IN["overlay"], on_file=inventory.see)
    return inventory.sbom(root.name, report.findings)


def test_an_audited_tree_gives_its_packages_with_licences_and_purls(tree: Path) -> None:
    text = tree_sbom(tree)
    assert text == tree_sbom(tree)
    components = by_ref(valid(text.decode()))
    dist = components["path:usr/lib/python3/dist-packages/Tiny_Lib-2.0.dist-info"]
    assert (dist["name"], dist["version"], dist["purl"], licences(dist)) == (
        "Tiny_Lib", "2.0", "pkg:pypi/tiny-lib@2.0", ["MIT"]
    )  # fmt: skip
    bash = components["pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=arm64"]
    # DEP-5's Expat is MIT; GPL-3+ and GPL-2+ are read as SPDX ids by edgekit.audit.licences.
    assert sorted(licences(bash)) == ["GPL-2.0-or-later", "GPL-3.0-or-later", "MIT"]
    zlib = components["pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=arm64"]
    assert zlib["version"] == "1:1.2.13.dfsg-1" and "licenses" not in zlib
    assert not any("gone" in ref for ref in components)
    engine = components["file:opt/app/model.engine"]
    assert engine["type"] == "file" and engine["properties"] == [{"name": "edgekit:audit-rule", "value": "engine/plan"}]
    assert len(components) == 4


def test_the_purl_namespace_follows_os_release(tree: Path) -> None:
    (tree / "usr/lib/os-release").write_text('NAME="Ubuntu"\nID=ubuntu\n')
    refs = by_ref(json.loads(tree_sbom(tree)))
    assert any(ref.startswith("pkg:deb/ubuntu/bash@") for ref in refs)


def test_the_command_writes_the_sbom_even_when_the_audit_fails(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "tree.cdx.json"
    done = run_cli(str(tree), "--sbom", str(out))
    assert done.returncode == 1 and "AuditFailed" in done.stderr, done.stderr
    assert "SBOM written to" in done.stderr
    assert out.read_bytes() == tree_sbom(tree)
