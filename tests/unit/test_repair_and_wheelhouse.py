from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import jsonschema
import pytest

from tests.unit.conftest import sample_manifest
from wheelbarrow import _guard, _wheelhouse
from wheelbarrow._cache import sha256_of
from wheelbarrow._manifest import FileRef, Manifest, WheelEntry
from wheelbarrow._repair import (
    DPKG_SHIM,
    MERGED_USR_DPKG,
    RepairedWheel,
    base_exclusions,
    check_left_to_base,
    grafted_libraries,
    is_pure,
    one_repaired_wheel,
    parse_ldconfig,
    platform_tag,
    repair_command,
)
from wheelbarrow._wheelhouse import entry_for, requirements_text
from wheelbarrow.errors import RepairProducedManyWheelsError, RepairProducedNoWheelError, WheelhouseError


def make_wheel(path: Path, names: tuple[str, ...] = ("pkg/__init__.py",)) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"x")
    return path


def test_repair_outcomes_by_shape(tmp_path: Path) -> None:
    with pytest.raises(RepairProducedNoWheelError, match="produced no wheel"):
        one_repaired_wheel(tmp_path, "psycopg2")
    wheel = make_wheel(
        tmp_path / "psycopg2-2.9.13-cp311-cp311-manylinux_2_34_x86_64.whl",
        ("psycopg2/_psycopg.so", "psycopg2.libs/libpq-a1b2.so.5.15", "psycopg2.libs/libssl-c3d4.so.3"),
    )
    repaired = one_repaired_wheel(tmp_path, "psycopg2")
    assert repaired.path == wheel
    assert repaired.platform_tag == "manylinux_2_34_x86_64"
    assert repaired.grafted == ("libpq-a1b2.so.5.15", "libssl-c3d4.so.3")
    make_wheel(tmp_path / "psycopg2-2.9.13-cp311-cp311-manylinux_2_28_x86_64.whl")
    with pytest.raises(RepairProducedManyWheelsError, match="produced 2 wheels"):
        one_repaired_wheel(tmp_path, "psycopg2")


def test_wheel_names() -> None:
    assert is_pure("six-1.16.0-py2.py3-none-any.whl")
    assert not is_pure("psycopg2-2.9.13-cp311-cp311-manylinux_2_34_x86_64.whl")
    assert platform_tag("six-1.16.0-py2.py3-none-any.whl") == "any"


def test_grafted_libraries_ignore_other_files(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "a-1-cp311-cp311-linux_x86_64.whl", ("a/x.so", "a.libs/libz.so.1", "a.libs/README"))
    assert grafted_libraries(wheel) == ("libz.so.1",)


def manifest(*wheels: WheelEntry) -> Manifest:
    return sample_manifest(*wheels)


def test_manifest_round_trip(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "psycopg2-2.9.13-cp311-cp311-manylinux_2_34_x86_64.whl")
    entry = entry_for(
        wheel,
        "psycopg2",
        "2.9.13",
        "built",
        "manylinux_2_34_x86_64",
        sdist=FileRef("psycopg2-2.9.13.tar.gz", "1" * 64),
        builder_image_id="sha256:abc",
        grafted_libraries=("libpq.so.5",),
        expected_from_base=("libssl.so.3",),
    )
    assert entry.sha256 == sha256_of(wheel)
    assert entry.size == wheel.stat().st_size
    original = manifest(entry)
    text = original.to_json()
    assert text.startswith('{\n  "manifest_version": "1.3"')
    assert Manifest.from_json(text) == original


@pytest.mark.parametrize(
    "text", ["", "[]", '{"manifest_version": 2}', '{"manifest_version": "2.0"}', '{"manifest_version": 1}']
)
def test_bad_manifest_is_a_wheelhouse_error(text: str) -> None:
    with pytest.raises(WheelhouseError):
        Manifest.from_json(text)


def test_requirements_pin_every_wheel_by_hash() -> None:
    entries = [
        WheelEntry("b", "2", "b-2-py3-none-any.whl", "b" * 64, 1, "index", "any"),
        WheelEntry("a", "1", "a-1-py3-none-any.whl", "a" * 64, 1, "index", "any"),
    ]
    text = requirements_text(entries)
    assert text.index("a==1 \\\n    --hash=sha256:" + "a" * 64) < text.index("b==2")


def test_swap_keeps_the_old_wheelhouse_until_the_new_one_is_complete(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "old.whl").write_bytes(b"old")
    source = make_wheel(tmp_path / "a-1-py3-none-any.whl")
    entry = entry_for(source, "a", "1", "index", "any")

    def fail_after_filling() -> None:
        with _wheelhouse.staging(wheelhouse) as stage:
            _wheelhouse.fill(stage, [(source, entry)], manifest(entry))
            raise RuntimeError  # a failure after filling, before the swap

    with pytest.raises(RuntimeError):
        fail_after_filling()
    assert sorted(p.name for p in wheelhouse.iterdir()) == ["old.whl"]
    with _wheelhouse.staging(wheelhouse) as stage:
        _wheelhouse.fill(stage, [(source, entry)], manifest(entry))
        _wheelhouse.swap_in(stage, wheelhouse)
    assert sorted(p.name for p in wheelhouse.iterdir()) == [
        _guard.MARKER,
        "README.md",
        "a-1-py3-none-any.whl",
        "manifest.json",
        "requirements.txt",
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_first_wheelhouse_is_created(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "out" / "wheelhouse"
    with _wheelhouse.staging(wheelhouse) as stage:
        (stage / "x").write_text("x", encoding="utf-8")
        _wheelhouse.swap_in(stage, wheelhouse)
    assert (wheelhouse / "x").is_file()
    assert oct(wheelhouse.stat().st_mode & 0o777) == "0o755"


LDCONFIG = """\
143 libs found in cache `/etc/ld.so.cache'
\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1
\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3
\tlibcrypto.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcrypto.so.3
"""


def test_runtime_aware_exclusions() -> None:
    provided = parse_ldconfig(LDCONFIG)
    assert provided == {"libz.so.1", "libssl.so.3", "libcrypto.so.3"}
    assert base_exclusions("exclude-base", provided) == ("libcrypto.so.3", "libssl.so.3")
    assert base_exclusions("vendor-all", provided) == ()
    assert base_exclusions("exclude-base", frozenset({"libz.so.1"})) == ()
    command = repair_command(("libssl.so.3",), "manylinux_2_34_x86_64")
    shim, _, repair = command.rpartition("; ")
    assert repair == (
        f"PATH={DPKG_SHIM}:$PATH auditwheel repair -w {{dest_dir}} {{wheel}} --exclude libssl.so.3 "
        "--plat manylinux_2_34_x86_64"
    )
    assert shim.startswith("test -x /usr/bin/dpkg && ")  # a builder without dpkg repairs as before
    assert all(f"'{line}'" in shim for line in MERGED_USR_DPKG)
    # cibuildwheel fills in its two fields with str.format: no other brace may be in the command
    assert command.replace("{dest_dir}", "").replace("{wheel}", "").count("{") == 0
    assert "}" not in command.replace("{dest_dir}", "").replace("{wheel}", "")
    assert all("'" not in line for line in MERGED_USR_DPKG)  # each line is quoted whole


def test_expected_from_base_are_the_excluded_sonames_the_wheel_names(tmp_path: Path) -> None:
    wheel = tmp_path / "psycopg2-2.9.13-cp311-cp311-manylinux_2_34_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("psycopg2/_psycopg.so", b"\x7fELF\0libpq-1a2b.so.5.15\0libc.so.6\0")
        archive.writestr("psycopg2.libs/libpq-1a2b.so.5.15", b"\x7fELF\0libssl.so.3\0libcrypto.so.3\0")
    repaired = one_repaired_wheel(tmp_path, "psycopg2", ("libcrypto.so.3", "libssl.so.3", "libz.so.1"))
    assert repaired.expected_from_base == ("libcrypto.so.3", "libssl.so.3")
    assert repaired.grafted == ("libpq-1a2b.so.5.15",)


SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "manifest.schema.json").read_text())


def test_the_json_schema_describes_what_the_writer_writes() -> None:
    entry = WheelEntry(
        "psycopg2", "2.9.13", "psycopg2-2.9.13-cp311-cp311-manylinux_2_34_x86_64.whl", "a" * 64, 10, "built",
        "manylinux_2_34_x86_64", sdist=FileRef("psycopg2-2.9.13.tar.gz", "b" * 64), builder_image_id="sha256:1",
        grafted_libraries=("libpq-9f.so.5",), expected_from_base=("libssl.so.3",),
    )  # fmt: skip
    written = json.loads(sample_manifest(entry).to_json())
    jsonschema.validate(written, SCHEMA)
    for broken in ({"manifest_version": "2.0"}, {"source_date_epoch": -1}, {"wheels": [{"file": "../x.whl"}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**written, **broken}, SCHEMA)


def test_a_reader_accepts_any_minor_version_of_its_major() -> None:
    written = json.loads(sample_manifest().to_json())
    newer = {**written, "manifest_version": "1.9", "a_key_from_the_future": {"x": 1}}
    assert Manifest.from_json(json.dumps(newer)).project.name == "demo"
    assert Manifest.from_json(json.dumps({**written, "manifest_version": 1})).manifest_version == "1.0"
    with pytest.raises(WheelhouseError, match=r"is not 1\.x"):
        Manifest.from_json(json.dumps({**written, "manifest_version": "2.0"}))
    with pytest.raises(WheelhouseError, match=r"manifest\.target has no 'python_tag'"):
        Manifest.from_json(json.dumps({**written, "target": {"python": "3.11"}}))


def test_runtime_packages_libraries_are_left_to_the_base_whatever_the_policy() -> None:
    provided = frozenset({"libssl.so.3", "libcrypto.so.3", "libpq.so.5", "libz.so.1"})
    packaged = frozenset({"libpq.so.5", "libpq.so.5.15", "libnot-in-ldconfig.so.1"})
    assert base_exclusions("exclude-base", provided, packaged) == ("libcrypto.so.3", "libpq.so.5", "libssl.so.3")
    assert base_exclusions("vendor-all", provided, packaged) == ("libpq.so.5",)
    assert base_exclusions("vendor-all", provided) == ()


def test_libpython_is_left_to_the_base_whatever_the_policy() -> None:
    """auditwheel would drop it and move an executable that embeds Python behind a shim: never let it."""
    provided = frozenset({"libssl.so.3", "libcrypto.so.3"})
    assert base_exclusions("exclude-base", provided, python="3.11") == (
        "libcrypto.so.3", "libpython3.11.so.1.0", "libssl.so.3"
    )  # fmt: skip
    assert base_exclusions("vendor-all", provided, python="3.13") == ("libpython3.13.so.1.0",)


def test_expected_from_base_counts_executables_and_only_elf_files(tmp_path: Path) -> None:
    wheel = tmp_path / "uwsgi-2.0.31-cp311-cp311-manylinux_2_34_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("uwsgi-2.0.31.data/scripts/uwsgi", b"\x7fELF\0libpython3.11.so.1.0\0libc.so.6\0")
        archive.writestr("uwsgi-2.0.31.data/purelib/notes.txt", b"\0libssl.so.3\0")  # names it; not ELF
        archive.writestr("uwsgi-2.0.31.data/purelib/", b"")
    repaired = one_repaired_wheel(tmp_path, "uwsgi", ("libpython3.11.so.1.0", "libssl.so.3"))
    assert repaired.expected_from_base == ("libpython3.11.so.1.0",)


def test_a_base_lacking_what_the_wheels_leave_to_it_is_refused_before_any_image() -> None:
    def wheel(*expected: str) -> RepairedWheel:
        return RepairedWheel(Path("w.whl"), "manylinux_2_34_x86_64", (), expected)

    check_left_to_base([("psycopg2", wheel("libssl.so.3"))], frozenset({"libssl.so.3"}), "base")
    check_left_to_base([], frozenset(), "base")
    with pytest.raises(WheelhouseError, match=r"uwsgi needs libpython3\.11\.so\.1\.0") as caught:
        check_left_to_base(
            [("psycopg2", wheel("libssl.so.3")), ("uwsgi", wheel("libpython3.11.so.1.0", "libssl.so.3"))],
            frozenset({"libssl.so.3"}),
            "localhost/wheelbarrow/runtime-base:bookworm",
        )
    assert "psycopg2" not in str(caught.value)
    assert "(on Debian: libpython3.11)" in caught.value.tip
    with pytest.raises(WheelhouseError, match=r"libpq\.so\.5") as other:
        check_left_to_base([("psycopg2", wheel("libpq.so.5"))], frozenset(), "base")
    assert "Debian" not in other.value.tip


def tiny_elf(linked: tuple[str, ...], *, also: bytes = b"", wide: bool = True, little: bool = True) -> bytes:
    """An ELF file with a .dynstr, a .dynamic that links ``linked`` (DT_NEEDED), and ``also`` as data."""
    order = "<" if little else ">"
    strings = b"\0" + b"".join(s.encode() + b"\0" for s in linked)
    offsets = [strings.index(b"\0" + s.encode() + b"\0") + 1 for s in linked]
    entry = order + ("qQ" if wide else "iI")
    dynamic = b"".join(struct.pack(entry, 1, o) for o in offsets) + struct.pack(entry, 0, 0)
    header_size, section = (64, order + "IIQQQQIIQQ") if wide else (52, order + "IIIIIIIIII")
    data = b"\0" * header_size + strings + dynamic + also
    shoff = len(data)
    sections = [
        struct.pack(section, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        struct.pack(section, 0, 3, 0, 0, header_size, len(strings), 0, 0, 1, 0),  # .dynstr
        struct.pack(section, 0, 6, 0, 0, header_size + len(strings), len(dynamic), 1, 0, 8, 0),  # .dynamic
    ]
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if little else 2, 1]) + b"\0" * 9
    if wide:
        head = ident + struct.pack(order + "HHIQQQIHHHHHH", 3, 62, 1, 0, 0, shoff, 0, 64, 56, 0, 64, 3, 0)
    else:
        head = ident + struct.pack(order + "HHIIIIIHHHHHH", 3, 3, 1, 0, 0, shoff, 0, 52, 32, 0, 40, 3, 0)
    return head + data[len(head) :] + b"".join(sections)


@pytest.mark.parametrize(("wide", "little"), [(True, True), (False, False)])
def test_only_what_an_elf_file_links_is_expected_from_the_base(tmp_path: Path, wide: bool, little: bool) -> None:
    """A library that dlopens libpython by name holds the string, and does not link it: not expected."""
    wheel = tmp_path / "jep-1.0-cp311-cp311-manylinux_2_34_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            "jep/_jep.so",
            tiny_elf(("libssl.so.3", "libc.so.6"), also=b"\0libpython3.11.so.1.0\0", wide=wide, little=little),
        )
        archive.writestr("jep/notes.txt", b"\0libcrypto.so.3\0")
    repaired = one_repaired_wheel(tmp_path, "jep", ("libcrypto.so.3", "libpython3.11.so.1.0", "libssl.so.3"))
    assert repaired.expected_from_base == ("libssl.so.3",)
