"""Credentials out of anything the agent logs: camera and sink URLs carry passwords."""

from __future__ import annotations

import re

SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "pass", "token", "secret")


def mask_url(url: str) -> str:
    """The URL with its password (and password-like query values) replaced by ***."""
    # Up to the last @ anywhere: a password may itself hold @, / or ?, and masking too much
    # of a URL with an @ in its path is better than printing part of a password.
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*://)(.*)@", url)
    if match is not None:
        user, colon, _ = match.group(2).partition(":")
        url = match.group(1) + (f"{user}:***" if colon else user) + "@" + url[match.end() :]
    keys = "|".join(SECRET_QUERY_KEYS)
    return re.sub(rf"([?&;](?:{keys})=)[^&;#]*", r"\1***", url, flags=re.IGNORECASE)
