"""edgekit.audit.licences: copyleft licences from Python metadata and Debian copyright files."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.audit import licences
from edgekit.audit.findings import Finding
from edgekit.audit.tree import Entry, entries, entry_of_bytes

SITE = "usr/lib/python3/dist-packages"
DOC = "usr/share/doc"

GPL2_FREE_FORM = """This is the Debian package of oldtool.

Copyright (C) 1999 Some One

This program is free software; you can redistribute it and/or modify
it under the terms of the GNU General Public License as published by
the Free Software Foundation; either version 2 of the License, or
(at your option) any later version.

You should have received a copy of the GNU General Public License
along with this program.

On Debian systems, the complete text of the GNU General Public
License can be found in `/usr/share/common-licenses/GPL-2'.
"""

CORPUS = {
    f"{SITE}/agpl_app-1.0.dist-info/METADATA": (
        "Metadata-Version: 2.4\nName: agpl-app\nVersion: 1.0\nLicense-Expression: AGPL-3.0-or-later\n"
    ),
    f"{SITE}/gplclassified-2.3.dist-info/METADATA": (
        "Metadata-Version: 2.1\nName: gplclassified\nVersion: 2.3\n"
        "Classifier: Programming Language :: Python :: 3\n"
        "Classifier: License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)\n"
        "\nA long description that mentions the GNU Affero General Public License.\n"
    ),
    f"{SITE}/lesser-0.5.egg-info/PKG-INFO": (
        "Metadata-Version: 1.1\nName: lesser\nVersion: 0.5\nLicense: GNU Lesser General Public License v2.1 or later\n"
    ),
    f"{SITE}/permissive-3.0.dist-info/METADATA": (
        "Metadata-Version: 2.4\nName: permissive\nVersion: 3.0\nLicense-Expression: MIT\n"
        "Classifier: License :: OSI Approved :: MIT License\n"
    ),
    f"{DOC}/gpl3tool/copyright": (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: gpl3tool\n\n"
        "Files: *\nCopyright: 2020 Someone\nLicense: GPL-3\n\n"
        "License: GPL-3\n On Debian systems the full text is in /usr/share/common-licenses/GPL-3.\n"
    ),
    f"{DOC}/libmixed1/copyright": (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2001 A\nLicense: GPL-2+\n\n"
        "Files: lib/*\nCopyright: 2002 B\nLicense: LGPL-2.1+\n\n"
        "License: GPL-2+\n This program is free software; ... GNU Lesser General Public License ...\n\n"
        "License: LGPL-2.1+\n See /usr/share/common-licenses/LGPL-2.1.\n"
    ),
    f"{DOC}/oldtool/copyright": GPL2_FREE_FORM,
    f"{DOC}/bsdtool/copyright": (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2010 C\nLicense: BSD-3-clause\n\n"
        "License: BSD-3-clause\n Redistribution and use ... (not the GNU General Public License)\n"
    ),
    # Not metadata, though full of licence text: never read.
    "usr/share/common-licenses/GPL-3": "GNU GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007\n",
    f"{SITE}/agpl_app-1.0.dist-info/LICENSE": "GNU AFFERO GENERAL PUBLIC LICENSE\n",
    f"{SITE}/agpl_app/__init__.py": "# SPDX-License-Identifier: AGPL-3.0-only\n",
    f"{DOC}/oldtool/README.Debian": "GPL-2+\n",
    f"{DOC}/oldtool/examples/copyright": "License: GPL-3\n",
}

READ_PATHS = {path for path in CORPUS if path.endswith(("/METADATA", "/PKG-INFO", "/copyright"))} - {
    f"{DOC}/oldtool/examples/copyright"
}


def _audit(tmp_path: Path) -> tuple[dict[str, list[Finding]], list[tuple[str, int, int]]]:
    for relative, text in CORPUS.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    reads: list[tuple[str, int, int]] = []

    def watched(entry: Entry) -> Entry:
        def read(offset: int, size: int) -> bytes:
            reads.append((entry.path, offset, size))
            return entry.reader(offset, size)

        return Entry(entry.path, entry.size, read)

    found: dict[str, list[Finding]] = {}
    for entry in entries(tmp_path):
        findings = list(licences.check(watched(entry)))
        if findings:
            found[entry.path] = findings
    return found, reads


@pytest.fixture
def audited(tmp_path: Path) -> dict[str, list[Finding]]:
    return _audit(tmp_path)[0]


def test_only_metadata_files_are_read_and_reads_are_capped(tmp_path: Path) -> None:
    _, reads = _audit(tmp_path)
    assert {path for path, _, _ in reads} == READ_PATHS
    assert all(0 < size <= licences.READ_CAP for _, _, size in reads)


def test_agpl_license_expression(audited: dict[str, list[Finding]]) -> None:
    [finding] = audited[f"{SITE}/agpl_app-1.0.dist-info/METADATA"]
    assert (finding.rule, finding.package) == ("licence/agpl", "agpl-app==1.0")
    assert "METADATA License-Expression: AGPL-3.0-or-later" in finding.reason


def test_gpl_classifier_only(audited: dict[str, list[Finding]]) -> None:
    # The description after the headers mentions the AGPL; it is prose, not metadata.
    [finding] = audited[f"{SITE}/gplclassified-2.3.dist-info/METADATA"]
    assert (finding.rule, finding.package) == ("licence/gpl", "gplclassified==2.3")
    assert "GPL-3.0-or-later" in finding.reason
    assert "METADATA Classifier: License :: OSI Approved :: GNU General Public License v3 or later" in finding.reason


def test_lgpl_free_text(audited: dict[str, list[Finding]]) -> None:
    [finding] = audited[f"{SITE}/lesser-0.5.egg-info/PKG-INFO"]
    assert (finding.rule, finding.package) == ("licence/lgpl", "lesser==0.5")
    assert "PKG-INFO License: GNU Lesser General Public License v2.1 or later -> LGPL-2.1-or-later" in finding.reason


def test_dep5_gpl3(audited: dict[str, list[Finding]]) -> None:
    [finding] = audited[f"{DOC}/gpl3tool/copyright"]
    assert (finding.rule, finding.package) == ("licence/gpl", "gpl3tool")
    # The Files paragraph and the License paragraph give one note.
    assert finding.reason == "declares the GNU GPL GPL-3.0-only (DEP-5 License: GPL-3 -> GPL-3.0-only)"


def test_dep5_gpl_and_lgpl_paragraphs(audited: dict[str, list[Finding]]) -> None:
    findings = audited[f"{DOC}/libmixed1/copyright"]
    assert [(f.rule, f.package) for f in findings] == [("licence/gpl", "libmixed1"), ("licence/lgpl", "libmixed1")]
    assert "DEP-5 License: GPL-2+ -> GPL-2.0-or-later" in findings[0].reason
    assert "DEP-5 License: LGPL-2.1+ -> LGPL-2.1-or-later" in findings[1].reason


def test_free_form_gpl2(audited: dict[str, list[Finding]]) -> None:
    # The common-licenses reference names the version only; the grant says "or later".
    [finding] = audited[f"{DOC}/oldtool/copyright"]
    assert (finding.rule, finding.package) == ("licence/gpl", "oldtool")
    assert finding.reason.startswith("declares the GNU GPL GPL-2.0-or-later (copyright text: GNU General Public")
    assert "any later version -> GPL-2.0-or-later" in finding.reason


def test_permissive_packages_give_nothing(audited: dict[str, list[Finding]]) -> None:
    assert f"{SITE}/permissive-3.0.dist-info/METADATA" not in audited
    assert f"{DOC}/bsdtool/copyright" not in audited
    assert set(audited) == READ_PATHS - {f"{SITE}/permissive-3.0.dist-info/METADATA", f"{DOC}/bsdtool/copyright"}


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("GPLv3", {"GPL-3.0-only"}),
        ("GNU General Public License v3 or later (GPLv3+)", {"GPL-3.0-or-later"}),
        ("LGPL-2.1-or-later", {"LGPL-2.1-or-later"}),
        ("AGPL-3.0", {"AGPL-3.0-only"}),
        ("GNU Affero General Public License v3", {"AGPL-3.0-only"}),
        ("GPL-2.0+", {"GPL-2.0-or-later"}),
        ("GPL-2.0-only WITH Classpath-exception-2.0", {"GPL-2.0-only"}),
        ("GPL-2+ with OpenSSL exception", {"GPL-2.0-or-later"}),
        ("GPL-1+", {"GPL-1.0-or-later"}),
        ("LGPL-2", {"LGPL-2.0-only"}),
        ("AGPL-3+", {"AGPL-3.0-or-later"}),
        ("GPL", {"GPL-1.0-or-later"}),
        ("GNU GPL version 2 only", {"GPL-2.0-only"}),
        ("the GNU General Public License version 2 as published by the FSF.", {"GPL-2.0-only"}),
        ("see /usr/share/common-licenses/GPL-3", {"GPL-3.0-only"}),
        ("https://www.gnu.org/licenses/lgpl-3.0.html", {"LGPL-3.0-only"}),
        ("GPL-2.1 (no such version)", {"GPL-1.0-or-later"}),
        ("Copyright 2004 Someone", set()),
        ("MIT OR GPL-2.0-or-later", {"GPL-2.0-or-later"}),
        ("MIT", set()),
        ("BSD-3-clause", set()),
        ("GNU Free Documentation License", set()),
    ],
)
def test_copyleft_spdx_ids(text: str, ids: set[str]) -> None:
    assert licences.copyleft_spdx_ids(text) == ids


@pytest.mark.parametrize(
    ("classifier", "spdx"),
    [
        ("GNU Affero General Public License v3", "AGPL-3.0-only"),
        ("GNU Affero General Public License v3 or later (AGPLv3+)", "AGPL-3.0-or-later"),
        ("GNU General Public License (GPL)", "GPL-1.0-or-later"),
        ("GNU General Public License v2 (GPLv2)", "GPL-2.0-only"),
        ("GNU General Public License v2 or later (GPLv2+)", "GPL-2.0-or-later"),
        ("GNU General Public License v3 (GPLv3)", "GPL-3.0-only"),
        ("GNU General Public License v3 or later (GPLv3+)", "GPL-3.0-or-later"),
        ("GNU Lesser General Public License v2 (LGPLv2)", "LGPL-2.0-only"),
        ("GNU Lesser General Public License v2 or later (LGPLv2+)", "LGPL-2.0-or-later"),
        ("GNU Lesser General Public License v3 (LGPLv3)", "LGPL-3.0-only"),
        ("GNU Lesser General Public License v3 or later (LGPLv3+)", "LGPL-3.0-or-later"),
        ("GNU Library or Lesser General Public License (LGPL)", "LGPL-2.0-or-later"),
    ],
)
def test_trove_classifiers(classifier: str, spdx: str) -> None:
    assert licences.copyleft_spdx_ids(f"License :: OSI Approved :: {classifier}") == {spdx}


def test_a_full_licence_text_counts_by_its_heading() -> None:
    # The GPL's body names the LGPL and the AGPL and holds the "or later" template.
    text = (
        "GNU GENERAL PUBLIC LICENSE\n   Version 3, 29 June 2007\n\n"
        " 13. Use with the GNU Affero General Public License.\n"
        "END OF TERMS AND CONDITIONS\n\nHow to Apply: either version 3 of the License, or (at your option) any later\n"
        "version. ... use the GNU Lesser General Public License instead of this License.  But first, please read\n"
        "<https://www.gnu.org/licenses/why-not-lgpl.html>.\n"
    )
    assert licences.copyleft_spdx_ids(text) == {"GPL-3.0-only"}


def _check(path: str, text: str) -> list[Finding]:
    return list(licences.check(entry_of_bytes(path, text.encode())))


@pytest.mark.parametrize(
    ("expression", "rules"),
    [
        ("MIT OR GPL-2.0-only", ["licence/dual"]),
        ("(Apache-2.0 OR LGPL-3.0-or-later) AND AGPL-3.0-only", ["licence/agpl", "licence/dual"]),
        # A commercial licence is no way out of the GPL without a contract.
        ("GPL-2.0-only OR LicenseRef-Commercial", ["licence/gpl"]),
        ("GPL-2.0-only AND MIT", ["licence/gpl"]),
        ("MIT OR (GPL-2.0-only", ["licence/gpl"]),
    ],
)
def test_dual_licensing_in_license_expression(expression: str, rules: list[str]) -> None:
    metadata = f"Metadata-Version: 2.4\nName: dual\nVersion: 1\nLicense-Expression: {expression}\n"
    assert [f.rule for f in _check("site/dual-1.dist-info/METADATA", metadata)] == rules


def test_dual_licensing_in_dep5() -> None:
    copyright_file = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: Larry\nLicense: Artistic or GPL-1+\n\nFiles: x/*\nLicense: GPL-2+, and BSD-3-clause\n"
    )
    findings = _check("usr/share/doc/libfoo-perl/copyright", copyright_file)
    assert [(f.rule, f.package) for f in findings] == [("licence/dual", "libfoo-perl"), ("licence/gpl", "libfoo-perl")]
    assert findings[0].reason == (
        "offers GPL-1.0-or-later only beside a permissive alternative "
        "(DEP-5 License: Artistic or GPL-1+ -> GPL-1.0-or-later)"
    )
    assert "DEP-5 License: GPL-2+, and BSD-3-clause -> GPL-2.0-or-later" in findings[1].reason


def test_license_expression_wins_over_legacy_fields() -> None:
    metadata = (
        "Metadata-Version: 2.4\nName: x\nVersion: 1\nLicense-Expression: MIT\nLicense: GPL\n"
        "Classifier: License :: OSI Approved :: GNU General Public License (GPL)\n"
    )
    assert _check("x-1.dist-info/METADATA", metadata) == []


def test_legacy_license_field_and_classifiers_are_both_read() -> None:
    metadata = (
        "Metadata-Version: 2.1\nName: x\nVersion: 1\nLicense: see LICENSE\n"
        "Classifier: License :: OSI Approved :: GNU Affero General Public License v3\n"
    )
    [finding] = _check("x-1.dist-info/METADATA", metadata)
    assert finding.rule == "licence/agpl"
