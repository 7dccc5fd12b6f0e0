"""What an ELF file links, and where the dynamic loader would find it: no tool, standard library only.

:func:`read` takes DT_NEEDED, DT_RPATH and DT_RUNPATH from the dynamic section (found through the section
headers), PT_INTERP from the program headers, whether the file imports CPython's C API (undefined
``Py*`` symbols) and the ``PyInit_*`` functions it exports (what makes a shared object an extension
module). A name that merely appears in the file (a library it ``dlopen``s by name, a message) is not a
dependency; only the dynamic section says what the loader must find. Read with seeks, never whole.

:func:`resolve` walks what an object links, as glibc's loader searches: the RPATH of the loading chain
(when the object has no RUNPATH), ``LD_LIBRARY_PATH``, the object's RUNPATH (``$ORIGIN`` expanded), then
``/etc/ld.so.cache`` (read by :func:`ld_cache`), then the default folders; a candidate counts only when it
is an ELF file of the same machine and class. The repair (on the host), the distroless closure (in the
runtime base) and the probe of verify (in the image, shell or none) all use this one module; it imports
nothing of wheelbarrow so that the latter two can run it with the image's own Python.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, NamedTuple

ELF_MAGIC = b"\x7fELF"
SHT_DYNAMIC, SHT_DYNSYM = 6, 11
DT_NULL, DT_NEEDED, DT_RPATH, DT_RUNPATH = 0, 1, 15, 29
PT_INTERP = 3
MAX_SECTIONS = 4096
MAX_DYNAMIC = 1 << 20
MAX_SYMBOLS = 1 << 16
CACHE = "/etc/ld.so.cache"
CACHE_MAGIC = b"glibc-ld.so.cache1.1"
#: The folders glibc's loader searches last, by machine (e_machine): Debian's multiarch ones first.
TRIPLETS = {62: "x86_64-linux-gnu", 183: "aarch64-linux-gnu", 3: "i386-linux-gnu", 40: "arm-linux-gnueabihf"}


class Dynamic(NamedTuple):
    machine: int  # e_machine
    wide: bool  # ELFCLASS64
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    interpreter: str  # PT_INTERP ("" for a shared object)
    imports_python: bool  # an undefined dynamic symbol named Py* or _Py*
    has_dynamic: bool  # a dynamic section was found (False: static, or section headers stripped)
    inits: tuple[str, ...] = ()  # defined dynamic symbols named PyInit_*: what an extension module exports
    has_symbols: bool = False  # a dynamic symbol table was read (so ``inits`` is what the file exports)


def _string(f: IO[bytes], offset: int) -> str:
    f.seek(offset)
    return f.read(4096).split(b"\0", 1)[0].decode("utf-8", "replace")


def read(f: IO[bytes]) -> Dynamic | None:
    """What the ELF file ``f`` (seekable) asks of the loader, or None when it is not ELF or is truncated."""
    try:
        f.seek(0)
        head = f.read(64)
        if head[:4] != ELF_MAGIC or len(head) < 52:
            return None
        wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
        (machine,) = struct.unpack_from(order + "H", head, 18)
        if wide:
            (phoff, shoff) = struct.unpack_from(order + "QQ", head, 0x20)
            phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", head, 0x36)
            header, dyn_entry, sym, sym_size = order + "IIQQQQI", order + "qQ", order + "IBBH", 24
        else:
            (phoff, shoff) = struct.unpack_from(order + "II", head, 0x1C)
            phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", head, 0x2A)
            header, dyn_entry, sym, sym_size = order + "IIIIIII", order + "iI", order + "I8xBBH", 16
        interpreter = ""
        for index in range(min(phnum, 256)):
            f.seek(phoff + index * phentsize)
            entry = f.read(phentsize)
            if len(entry) >= 16 and struct.unpack_from(order + "I", entry)[0] == PT_INTERP:
                where = struct.unpack_from(order + ("Q" if wide else "I"), entry, 8 if wide else 4)[0]
                interpreter = _string(f, where)
        sections = []
        for index in range(min(shnum, MAX_SECTIONS) if shentsize >= struct.calcsize(header) else 0):
            f.seek(shoff + index * shentsize)
            _name, kind, _flags, _addr, offset, size, link = struct.unpack(header, f.read(struct.calcsize(header)))
            sections.append((kind, offset, size, link))
        lists: dict[int, list[str]] = {DT_NEEDED: [], DT_RPATH: [], DT_RUNPATH: []}
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
                if tag in lists and value < strings_size:
                    lists[tag].append(_string(f, strings_offset + value))
        symbol_tables = [s for s in sections if s[0] == SHT_DYNSYM and s[3] < len(sections)]
        python, inits = _symbols(f, sections, symbol_tables, (sym, sym_size))
    except (OSError, struct.error, ValueError, IndexError):
        return None
    rpath, runpath = (tuple(p for s in lists[tag] for p in s.split(":") if p) for tag in (DT_RPATH, DT_RUNPATH))
    needed_ = tuple(lists[DT_NEEDED])
    found = Dynamic(machine, wide, needed_, rpath, runpath, interpreter, python, bool(dynamic), tuple(inits))
    return found._replace(has_symbols=bool(symbol_tables))


def _symbols(
    f: IO[bytes],
    sections: list[tuple[int, int, int, int]],
    tables: list[tuple[int, int, int, int]],
    entry: tuple[str, int],
) -> tuple[bool, list[str]]:
    """From the dynamic symbol tables (``entry``: the struct of a symbol's head and a symbol's size):
    whether an undefined one is named Py*/_Py*, and the defined PyInit_* ones."""
    (sym, size_of), python, inits = entry, False, []
    for _kind, offset, size, link in tables:
        f.seek(sections[link][1])
        names = f.read(min(sections[link][2], MAX_DYNAMIC * 4))
        f.seek(offset)
        table = f.read(min(size, MAX_SYMBOLS * size_of))
        for at in range(0, len(table) - size_of + 1, size_of):
            name, _info, _other, shndx = struct.unpack_from(sym, table, at)
            if not name:
                continue
            if shndx == 0 and names.startswith((b"Py", b"_Py"), name):
                python = True
            elif shndx != 0 and names.startswith(b"PyInit", name):
                inits.append(names[name : names.find(b"\0", name)].decode("utf-8", "replace"))
    return python, inits


def needed(f: IO[bytes]) -> tuple[str, ...] | None:
    """The DT_NEEDED sonames of the ELF file ``f`` (seekable), or None when it has no dynamic section
    header to read them from (not ELF, truncated, or its section headers stripped)."""
    found = read(f)
    return found.needed if found is not None and found.has_dynamic else None


def read_path(path: str) -> Dynamic | None:
    try:
        with open(path, "rb") as f:  # noqa: PTH123 - runs in images whose Python may be old; plain open is enough
            return read(f)
    except OSError:
        return None


def ld_cache(path: str = CACHE) -> dict[str, list[str]]:
    """soname -> the paths ``/etc/ld.so.cache`` lists for it, in its order ({} without a readable cache)."""
    try:
        with open(path, "rb") as f:  # noqa: PTH123
            data = f.read(64 << 20)
    except OSError:
        return {}
    start = data.find(CACHE_MAGIC)  # new format, alone or after the old one
    order = "<" if sys.byteorder == "little" else ">"
    out: dict[str, list[str]] = {}
    try:
        (count,) = struct.unpack_from(order + "I", data, start + 20)
        for index in range(min(count, 1 << 20)):
            _flags, key, value = struct.unpack_from(order + "iII", data, start + 48 + index * 24)
            name = data[start + key : data.index(b"\0", start + key)].decode("utf-8", "replace")
            where = data[start + value : data.index(b"\0", start + value)].decode("utf-8", "replace")
            out.setdefault(name, []).append(where)
    except (struct.error, ValueError):
        return out if start >= 0 else {}
    return out if start >= 0 else {}


def default_dirs(machine: int) -> tuple[str, ...]:
    triplet = TRIPLETS.get(machine)
    multiarch = (f"/lib/{triplet}", f"/usr/lib/{triplet}") if triplet else ()
    return (*multiarch, "/lib64", "/usr/lib64", "/lib", "/usr/lib")


def _expand(folder: str, origin: str) -> str:
    return folder.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)


def _fits(path: str, machine: int, wide: bool) -> Dynamic | None:
    if not os.path.isfile(path):  # noqa: PTH113
        return None
    found = read_path(path)
    return found if found is not None and found.machine == machine and found.wide == wide else None


def find(soname: str, cache: Mapping[str, Sequence[str]], machine: int, wide: bool) -> str | None:
    """Where the loader finds ``soname`` for an object of this machine and class with no RPATH or RUNPATH."""
    candidates = [*cache.get(soname, ()), *(os.path.join(d, soname) for d in default_dirs(machine))]  # noqa: PTH118
    return next((c for c in candidates if _fits(c, machine, wide) is not None), None)


class Resolved(NamedTuple):
    found: dict[str, str]  # soname -> the path the loader would open
    missing: dict[str, str]  # soname -> the path of the first object that needs it
    interpreters: tuple[str, ...]  # PT_INTERP of the objects walked
    refused: dict[str, str]  # a candidate ``admit`` refused -> the path of the first object that led to it


def resolve(
    paths: Sequence[str],
    cache: Mapping[str, Sequence[str]],
    library_path: Sequence[str] = (),
    admit: Callable[[str], bool] = lambda _path: True,
) -> Resolved:
    """Every library the objects ``paths`` need, directly or through each other, as the loader finds it.

    A candidate ``admit`` refuses is passed over, as if it were not there (the loader then searches on), and
    recorded in ``refused``: the distroless closure admits only library folders, so what an object's own
    header names (an absolute DT_NEEDED such as ``/bin/sh``, an RPATH of ``/usr/bin``) is never copied."""
    found: dict[str, str] = {}
    missing: dict[str, str] = {}
    refused: dict[str, str] = {}
    interpreters: list[str] = []
    queue: list[tuple[str, Dynamic, tuple[str, ...]]] = []
    for path in paths:
        top = read_path(path)
        if top is not None:
            queue.append((path, top, ()))
    while queue:
        path, dyn, inherited = queue.pop(0)
        if dyn.interpreter and dyn.interpreter not in interpreters:
            interpreters.append(dyn.interpreter)
        origin = os.path.dirname(path)  # noqa: PTH120
        rpath = () if dyn.runpath else (*(_expand(d, origin) for d in dyn.rpath), *inherited)
        runpath = tuple(_expand(d, origin) for d in dyn.runpath)
        folders = (*rpath, *library_path, *runpath)
        for soname in dyn.needed:
            if soname in found or soname in missing:
                continue
            if "/" in soname:
                candidates: list[str] = [soname]
            else:
                candidates = [os.path.join(d, soname) for d in folders]  # noqa: PTH118
                candidates += list(cache.get(soname, ()))
                candidates += [os.path.join(d, soname) for d in default_dirs(dyn.machine)]  # noqa: PTH118
            for candidate in candidates:
                fits = _fits(candidate, dyn.machine, dyn.wide)
                if fits is not None and not admit(candidate):
                    refused.setdefault(candidate, path)
                elif fits is not None:
                    found[soname] = candidate
                    queue.append((candidate, fits, rpath))
                    break
            else:
                missing[soname] = path
    return Resolved(found, missing, tuple(interpreters), refused)
