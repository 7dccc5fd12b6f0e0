"""What an ELF file links: its DT_NEEDED entries, read from its section headers (no tool, no import).

A name that merely appears in the file (a library it ``dlopen``s by name, a message) is not a
dependency; only the dynamic section says what the loader must find. Read with seeks, never whole.
"""

from __future__ import annotations

import struct
from typing import IO

ELF_MAGIC = b"\x7fELF"
SHT_DYNAMIC = 6
DT_NULL, DT_NEEDED = 0, 1
MAX_SECTIONS = 4096
MAX_DYNAMIC = 1 << 20


def needed(f: IO[bytes]) -> tuple[str, ...] | None:
    """The DT_NEEDED sonames of the ELF file ``f`` (seekable), or None when it has no dynamic section
    header to read them from (not ELF, truncated, or its section headers stripped)."""
    try:
        f.seek(0)
        head = f.read(64)
        if head[:4] != ELF_MAGIC or len(head) < 52:
            return None
        wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
        if wide:
            (shoff,) = struct.unpack_from(order + "Q", head, 0x28)
            shentsize, shnum = struct.unpack_from(order + "HH", head, 0x3A)
            header, dyn_entry = order + "IIQQQQI", order + "qQ"
        else:
            (shoff,) = struct.unpack_from(order + "I", head, 0x20)
            shentsize, shnum = struct.unpack_from(order + "HH", head, 0x2E)
            header, dyn_entry = order + "IIIIIII", order + "iI"
        if shentsize < struct.calcsize(header):
            return None
        sections = []
        for index in range(min(shnum, MAX_SECTIONS)):
            f.seek(shoff + index * shentsize)
            _name, kind, _flags, _addr, offset, size, link = struct.unpack(header, f.read(struct.calcsize(header)))
            sections.append((kind, offset, size, link))
        found: list[str] = []
        dynamic = [s for s in sections if s[0] == SHT_DYNAMIC and s[3] < len(sections)]
        for _kind, offset, size, link in dynamic:
            strings_offset, strings_size = sections[link][1], sections[link][2]
            f.seek(offset)
            table = f.read(min(size, MAX_DYNAMIC))
            step = struct.calcsize(dyn_entry)
            for at in range(0, len(table) - step + 1, step):
                tag, value = struct.unpack_from(dyn_entry, table, at)
                if tag == DT_NULL:
                    break
                if tag == DT_NEEDED and value < strings_size:
                    f.seek(strings_offset + value)
                    found.append(f.read(256).split(b"\0", 1)[0].decode("utf-8", "replace"))
    except (OSError, struct.error, ValueError):
        return None
    return tuple(found) if dynamic else None
