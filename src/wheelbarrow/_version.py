"""The version, declared once: pyproject.toml's ``[project] version``, read from the installed metadata."""

from __future__ import annotations

import json
from importlib import metadata

try:
    __version__ = metadata.version("wheelbarrow")
except metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

#: The extras a session or a noxfile installs wheelbarrow with: the lock tools it runs.
EXTRAS = "poetry,uv"


def source_requirement() -> str:
    """A pip requirement for the wheelbarrow that is running, lock tools included: where it was installed
    from (a path or a VCS URL, from its ``direct_url.json``; wheelbarrow is not on every index), else its
    release, ``wheelbarrow[poetry,uv]==VERSION``."""
    try:
        recorded = metadata.distribution("wheelbarrow").read_text("direct_url.json")
        origin = json.loads(recorded) if recorded else {}
    except (metadata.PackageNotFoundError, ValueError):
        origin = {}
    url = origin.get("url") if isinstance(origin, dict) else None
    vcs = origin.get("vcs_info") if isinstance(origin, dict) else None
    if isinstance(url, str) and url.startswith("file://") and "archive_info" not in origin:
        return f"wheelbarrow[{EXTRAS}] @ {url}"
    if isinstance(url, str) and isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        commit = vcs.get("commit_id")
        pinned = f"@{commit}" if isinstance(commit, str) and commit else ""
        return f"wheelbarrow[{EXTRAS}] @ {vcs['vcs']}+{url}{pinned}"
    return f"wheelbarrow[{EXTRAS}]=={__version__}"


def with_tools(requirement: str) -> str:
    """``requirement`` (a version, a path, a URL, a requirement) with wheelbarrow's lock-tool extras: a path
    or URL given bare installs wheelbarrow without uv and Poetry otherwise."""
    text = requirement.strip()
    if "[" in text.split("@")[0]:
        return text  # extras named already
    if text.startswith(("wheelbarrow", "Wheelbarrow")) and not text.startswith(("wheelbarrow/", "wheelbarrow-")):
        name_end = len("wheelbarrow")
        return f"wheelbarrow[{EXTRAS}]{text[name_end:]}"
    if "://" in text or text.startswith("git+"):
        return f"wheelbarrow[{EXTRAS}] @ {text}"
    if text[:1].isdigit():
        return f"wheelbarrow[{EXTRAS}]=={text}"
    return f"{text}[{EXTRAS}]"  # a local path: pip takes extras after it
