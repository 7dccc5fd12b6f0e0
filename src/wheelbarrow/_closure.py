"""Runs INSIDE the runtime base, in the closure stage of a distroless build (standard library only).

``python3 -S -m wheelbarrow._closure DEST EPOCH EXCLUDE PACKAGES [tzdata] [gconv]`` copies into ``DEST``
exactly what the service executes, each file at its own path, symbolic links kept as links and their
targets copied too:

* the interpreter of the base (the venv's ``python`` leads to it) and its standard library, without the
  top-level modules that match a pattern of ``EXCLUDE`` (comma-separated, fnmatch; also matched against
  ``lib-dynload`` and ``__pycache__`` files by their module name);
* the venv (``/opt/venv``);
* every file of the ``runtime-packages`` (``PACKAGES``, comma-separated; their documentation aside): what
  they hold is loaded by name at run time (``dlopen``), which no DT_NEEDED entry says; the data files (not
  ELF) of the packages they depend on, the base system aside; the update-alternatives links to them;
* the shared-library closure of every ELF file copied so far, resolved by :mod:`wheelbarrow._elf` in this
  base (the libraries the manifest expects from the base among them), their dynamic loader, and the
  libraries glibc loads by name (``libgcc_s`` for thread cancellation, NSS modules where they exist);
  a library the base lacks is printed, not copied: verify then names it. Only library folders (those of
  ``ld.so.cache`` and the loader's defaults), the venv and files already copied are searched: a file an
  ELF header names elsewhere (an absolute DT_NEEDED such as ``/bin/sh``, an RPATH of ``/usr/bin``, a
  PT_INTERP that is no dynamic loader) is printed and left out, so verify names it too;
* the C.UTF-8 locale (the image's ``LANG``) and ``ldconfig`` (``ctypes.util.find_library`` asks it);
* the terminfo database (about 0.2 MB), unless ``curses`` is left out (``setupterm`` reads it);
* CA certificates (OpenSSL's default paths), ``nsswitch.conf``, ``os-release`` and ``debian_version``
  (scanners read them to know the distribution), ``services``, ``protocols``, ``rpc``, ``host.conf`` and
  ``gai.conf`` where the base has them, ``/etc/passwd`` and ``/etc/group`` with
  root and the app user only, its home (mode 700), ``/tmp`` (1777), tzdata only with ``tzdata``, glibc's
  iconv modules (the ``gconv`` folder beside libc) only with ``gconv``;
* ``/var/lib/dpkg/status.d/<package>``: the dpkg entry (with its version) of every package a copied file
  came from, as Google's distroless images write them, for scanners and for wheelbarrow's SBOM;
* ``/etc/ld.so.cache`` made for what was copied (``ldconfig -r``);
* ``/usr/share/wheelbarrow/closure.json``: how the closure was made (the epoch, the patterns left out,
  the runtime-packages, the packages listed, the libraries the base lacks). It also keeps BuildKit from
  reusing a final layer of the same files stamped with another epoch (its COPY's cache key ignores
  mtimes).

Everything in ``DEST`` is stamped with ``EPOCH`` (SOURCE_DATE_EPOCH), so two builds give one image id.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import sysconfig

from wheelbarrow import _elf

VENV = "/opt/venv"
APP_USER = "app"
BY_NAME = ("libgcc_s.so.1", "libnss_files.so.2", "libnss_dns.so.2")
PREFIX = "wheelbarrow-closure: "
DOCS = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/lintian/", "/usr/share/info/")


class Copier:
    def __init__(self, dest: str) -> None:
        self.dest = dest.rstrip("/")
        self.seen: set[str] = set()
        self.copied: list[str] = []  # real files, by their path in the base

    def _mirror_dir(self, path: str) -> None:
        target = self.dest + path
        if not os.path.isdir(target):
            info = os.stat(path)
            os.mkdir(target, stat.S_IMODE(info.st_mode))
            os.chown(target, info.st_uid, info.st_gid)

    def keep(self, path: str, skip: tuple[str, ...] = ()) -> None:
        """Copy ``path`` (a file, a link and what it leads to, or a folder and all it holds)."""
        if not os.path.isabs(path):  # a relative name (an ELF header's) would land outside DEST
            return
        path = os.path.normpath(path)
        if path in self.seen or not os.path.lexists(path):
            return
        self.seen.add(path)
        parts = path.strip("/").split("/")
        current = ""
        for index, part in enumerate(parts):
            current += "/" + part
            if os.path.islink(current):
                link = os.readlink(current)
                if not os.path.lexists(self.dest + current):
                    os.symlink(link, self.dest + current)
                led = os.path.join(os.path.dirname(current), link, *parts[index + 1 :])
                self.keep(led, skip)
                return
            if index < len(parts) - 1:
                self._mirror_dir(current)
        if os.path.isdir(path):
            self._mirror_dir(path)
            for entry in sorted(os.listdir(path)):
                if not _skipped(entry, skip):
                    self.keep(os.path.join(path, entry), skip)
        elif os.path.isfile(path):
            shutil.copy2(path, self.dest + path)
            info = os.stat(path)
            os.chown(self.dest + path, info.st_uid, info.st_gid)
            self.copied.append(path)


def _skipped(entry: str, patterns: tuple[str, ...]) -> bool:
    module = entry.split(".", 1)[0]
    return any(fnmatch.fnmatchcase(module, p) for p in patterns)


def _stdlib(copier: Copier, exclude: tuple[str, ...]) -> None:
    paths = sysconfig.get_paths()
    for top in dict.fromkeys((paths["stdlib"], paths["platstdlib"])):
        for entry in sorted(os.listdir(top)):
            if _skipped(entry, exclude):
                continue
            inner = exclude if entry in ("__pycache__", "lib-dynload") else ()
            copier.keep(os.path.join(top, entry), inner)


def _files_of(name: str) -> list[str]:
    """The regular files dpkg lists for the installed package ``name`` (any architecture), documentation aside."""
    escaped = glob.escape(name)
    listings = glob.glob(f"/var/lib/dpkg/info/{escaped}.list") + glob.glob(f"/var/lib/dpkg/info/{escaped}:*.list")
    files = []
    for listing in sorted(listings):
        with open(listing, encoding="utf-8", errors="replace") as f:
            files += [line for line in f.read().splitlines() if os.path.isfile(line) and not line.startswith(DOCS)]
    return files


def installed_stanzas(status: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Each installed package of dpkg's ``status`` text: its name -> its entry as written, and its fields
    (a field's continuation lines kept)."""
    out = {}
    for block in status.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): *(.*(?:\n .*)*)$", block, re.MULTILINE))
        if "install ok installed" in fields.get("Status", "") and fields.get("Package"):
            out[fields["Package"]] = (block.strip(), fields)
    return out


def dependencies(names: tuple[str, ...], status: str) -> list[str]:
    """The installed packages ``names`` depend on (Depends, Pre-Depends), recursively, from the text of
    dpkg's ``status``: of alternatives (``a | b``), the first installed; a virtual package by what provides
    it; never the base system (Essential, or of priority required), whose files the service never needs
    whole. Sorted, ``names`` themselves left out."""
    stanzas = {name: fields for name, (_text, fields) in installed_stanzas(status).items()}
    provides: dict[str, str] = {}
    for name, fields in stanzas.items():
        for virtual in re.split(r"\s*,\s*", fields.get("Provides", "")):
            if virtual.split():
                provides.setdefault(virtual.split()[0], name)

    def installed(alternative: str) -> str | None:
        words = alternative.split()  # "libc6:any (>= 2.34)", over continuation lines too
        name = words[0].split(":")[0] if words else ""
        return name if name in stanzas else provides.get(name)

    seen, queue = set(names), list(names)
    while queue:
        fields = stanzas.get(queue.pop(), {})
        for relation in re.split(r"\s*,\s*", f"{fields.get('Pre-Depends', '')},{fields.get('Depends', '')}"):
            found = next((p for p in map(installed, relation.split("|")) if p), None) if relation.strip() else None
            if found is None or found in seen:
                continue
            if stanzas[found].get("Essential") != "yes" and stanzas[found].get("Priority") != "required":
                seen.add(found)
                queue.append(found)
    return sorted(seen - set(names))


def _packaged(copier: Copier, packages: tuple[str, ...]) -> list[str]:
    """Every file of each runtime package (its documentation aside) and, of the packages they depend on
    (:func:`dependencies`), the files that are not ELF: their data (libmagic1's magic.mgc is
    libmagic-mgc's), where the ELF closure brings the libraries that something links. Then the links the
    packages' install scripts made with update-alternatives to what was copied (libblas.so.3). Returns the
    dependencies followed."""
    names = tuple(re.split("[=:]", p)[0] for p in packages)
    for name in names:
        for path in _files_of(name):
            copier.keep(path)
    try:
        with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as f:
            status = f.read()
    except OSError:
        return []
    followed = dependencies(names, status) if names else []
    for name in followed:
        for path in _files_of(name):
            if _elf.read_path(path) is None:
                copier.keep(path)
    _alternatives(copier)
    return followed


def _alternatives(copier: Copier) -> None:
    """Each update-alternatives link (its master and its slaves) whose current choice was copied."""
    copied = {os.path.realpath(p) for p in copier.copied}
    for record in sorted(glob.glob("/var/lib/dpkg/alternatives/*")):
        try:
            with open(record, encoding="utf-8", errors="replace") as f:
                lines = f.read().split("\n\n", 1)[0].splitlines()
        except OSError:
            continue
        pairs = [(os.path.basename(record), lines[1])] if len(lines) > 1 else []
        pairs += list(zip(lines[2::2], lines[3::2], strict=False))
        for name, link in pairs:
            chosen = os.path.join("/etc/alternatives", name)
            if os.path.isabs(link) and os.path.islink(chosen) and os.path.realpath(chosen) in copied:
                copier.keep(link)


def _elf_files(copier: Copier) -> list[str]:
    return [p for p in copier.copied if _elf.read_path(p) is not None]


def library_folders(cache: dict[str, list[str]]) -> frozenset[str]:
    """The folders a shared library of the closure may come from: those ``/etc/ld.so.cache`` lists and the
    loader's default ones, each as written and as its real path (a merged /usr has both)."""
    folders = {os.path.dirname(p) for paths in cache.values() for p in paths}
    folders |= {d for machine in _elf.TRIPLETS for d in _elf.default_dirs(machine)}
    return frozenset(folders | {os.path.realpath(f) for f in folders})


def admitted(path: str, folders: frozenset[str], copied: set[str]) -> bool:
    """Whether the closure may copy ``path`` as a library: it sits in a library folder, or in the venv (a
    repaired wheel's own ``.libs``), or was copied already (a runtime-package's file). Never what an ELF
    header alone names: an absolute DT_NEEDED or an RPATH could otherwise bring ``/bin/sh`` in."""
    if not os.path.isabs(path):  # relative to the closure's own folder, not the service's: never
        return False
    real = os.path.realpath(path)
    if real in copied or os.path.normpath(path) in copied:
        return True
    if os.path.normpath(path).startswith(VENV + "/") and real.startswith(VENV + "/"):
        return True
    return os.path.dirname(os.path.normpath(path)) in folders and os.path.dirname(real) in folders


def is_loader(path: str, folders: frozenset[str], copied: set[str]) -> bool:
    """Whether an ELF file's PT_INTERP may be copied: a dynamic loader (``ld-*``) in a library folder."""
    return os.path.basename(path).startswith("ld-") and admitted(path, folders, copied)


def _libraries(copier: Copier) -> tuple[list[str], list[str]]:
    """Copy the closure of every ELF file copied; return the sonames the base lacks (with who needs them),
    and the files an ELF header named that are not libraries of the base (not copied)."""
    cache = _elf.ld_cache()
    roots = _elf_files(copier)
    for soname in BY_NAME:
        roots += [p for p in cache.get(soname, []) if os.path.isfile(p)][:1]
    folders = library_folders(cache)
    copied = set(copier.copied)
    resolved = _elf.resolve(roots, cache, admit=lambda path: admitted(path, folders, copied))
    refused = [f"{path} (named by {who})" for path, who in sorted(resolved.refused.items())]
    for interpreter in resolved.interpreters:
        if is_loader(interpreter, folders, copied):
            copier.keep(interpreter)
        else:
            refused.append(f"{interpreter} (an ELF interpreter that is not a dynamic loader)")
    for path in [*roots, *resolved.found.values()]:
        copier.keep(path)
    return [f"{soname} (needed by {who})" for soname, who in sorted(resolved.missing.items())], refused


def _accounts(dest: str) -> None:
    """passwd and group with root and the app user only; its home, mode 700; /tmp for everyone."""
    for name in ("passwd", "group"):
        with open(f"/etc/{name}", encoding="utf-8") as f:
            lines = [line for line in f.read().splitlines() if line.split(":", 1)[0] in ("root", APP_USER)]
        with open(f"{dest}/etc/{name}", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    with open(f"{dest}/etc/passwd", encoding="utf-8") as f:
        home = next(line.split(":")[5] for line in f.read().splitlines() if line.startswith(APP_USER + ":"))
    os.makedirs(dest + home, exist_ok=True)
    info = os.stat(home)
    os.chmod(dest + home, 0o700)
    os.chown(dest + home, info.st_uid, info.st_gid)
    # /tmp of the image, for everyone with the sticky bit, as in any base image
    os.makedirs(dest + "/tmp", exist_ok=True)  # noqa: S108
    os.chmod(dest + "/tmp", 0o1777)  # noqa: S108, S103


def _dpkg_owners() -> dict[str, str]:
    """real path -> the package whose file list names it (both spellings of a merged /usr meet here)."""
    owners: dict[str, str] = {}
    through_links: dict[str, str] = {}  # python3-minimal's /usr/bin/python3 leads to python3.11-minimal's file
    for listing in sorted(glob.glob("/var/lib/dpkg/info/*.list")):
        package = os.path.basename(listing)[: -len(".list")].split(":", 1)[0]
        with open(listing, encoding="utf-8", errors="replace") as f:
            for line in f.read().splitlines():
                if line and not os.path.isdir(line):
                    into = through_links if os.path.islink(line) else owners
                    into.setdefault(os.path.realpath(line), package)
    return {**through_links, **owners}


def _dpkg_status(copier: Copier) -> list[str]:
    """status.d/<package> for every package a copied file came from: its dpkg entry, version included."""
    if not os.path.isfile("/var/lib/dpkg/status"):
        return []
    owners = _dpkg_owners()
    packages = sorted({owners[r] for r in (os.path.realpath(p) for p in copier.copied) if r in owners})
    with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as f:
        by_name = installed_stanzas(f.read())
    folder = copier.dest + "/var/lib/dpkg/status.d"
    os.makedirs(folder, exist_ok=True)
    for package in packages:
        if package in by_name:
            with open(f"{folder}/{package}", "w", encoding="utf-8") as f:
                f.write(by_name[package][0] + "\n")
    return packages


def _ld_cache(copier: Copier) -> None:
    for conf in ("/etc/ld.so.conf", "/etc/ld.so.conf.d"):
        copier.keep(conf)
    if shutil.which("ldconfig") or os.path.exists("/sbin/ldconfig"):
        subprocess.run([shutil.which("ldconfig") or "/sbin/ldconfig", "-r", copier.dest], check=True)
        shutil.rmtree(copier.dest + "/var/cache/ldconfig", ignore_errors=True)


def _stamp(dest: str, epoch: int) -> None:
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (epoch, epoch), follow_symlinks=False)
    os.utime(dest, (epoch, epoch))


def main() -> None:
    dest, epoch = sys.argv[1], int(sys.argv[2])
    exclude, packages = (tuple(p for p in arg.split(",") if p) for arg in sys.argv[3:5])
    tzdata, gconv = ("tzdata" in sys.argv[5:]), ("gconv" in sys.argv[5:])
    os.makedirs(dest + "/etc", exist_ok=True)
    copier = Copier(dest)
    base_python = getattr(sys, "_base_executable", sys.executable)
    for path in (base_python, os.path.realpath(sys.executable)):
        copier.keep(path)
    _stdlib(copier, exclude)
    if any(os.path.basename(p).startswith("_curses") for p in copier.copied):  # curses kept: its terminals
        for path in ("/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo"):
            copier.keep(path)
    copier.keep(VENV)
    followed = _packaged(copier, packages)
    # The locale the image's LANG names (glibc ships C.UTF-8 as a file: without it setlocale(LC_ALL, "")
    # fails), and ldconfig, which ctypes.util.find_library asks (`ldconfig -p`) for a library by name.
    for path in ("/usr/lib/locale/C.utf8", "/sbin/ldconfig"):
        copier.keep(path)
    missing, refused = _libraries(copier)
    verify = ssl.get_default_verify_paths()
    for path in (verify.cafile, verify.capath, verify.openssl_cafile, verify.openssl_capath, "/etc/ssl/certs"):
        if path:
            copier.keep(path)
    # what scanners read to know the distribution whose package entries follow (base-files')
    for path in ("/etc/nsswitch.conf", "/etc/os-release", "/etc/debian_version"):
        copier.keep(path)
    # what the C library's name services read, where the base has them (python:slim's netbase): a
    # service's port by its name, a protocol's number, as getaddrinfo with a service name asks
    for path in ("/etc/services", "/etc/protocols", "/etc/rpc", "/etc/host.conf", "/etc/gai.conf"):
        copier.keep(path)
    if gconv:  # glibc loads these by name (iconv_open): beside libc, in its multiarch folder
        libc = _elf.ld_cache().get("libc.so.6", [])
        for folder in dict.fromkeys(os.path.join(os.path.dirname(os.path.realpath(p)), "gconv") for p in libc):
            copier.keep(folder)
    if tzdata:
        copier.keep("/usr/share/zoneinfo")
        copier.keep("/etc/localtime")
    _accounts(dest)
    _ld_cache(copier)  # before the dpkg entries: ld.so.conf is libc-bin's
    listed = _dpkg_status(copier)
    record = {"source_date_epoch": epoch, "stdlib_exclude": exclude, "runtime_packages": packages, "gconv": gconv}
    record["runtime_package_dependencies"] = followed
    record.update({"dpkg_packages": listed, "missing": missing, "refused": refused, "files": len(copier.copied)})
    os.makedirs(dest + "/usr/share/wheelbarrow", exist_ok=True)
    with open(dest + "/usr/share/wheelbarrow/closure.json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    _stamp(dest, epoch)
    print(PREFIX + f"{len(copier.copied)} files; packages: {' '.join(listed) or 'none (no dpkg)'}")
    for line in missing:
        print(PREFIX + f"not in the runtime base: {line}")
    for line in refused:
        print(PREFIX + f"not copied, not a library of the runtime base: {line}")


if __name__ == "__main__":
    main()
