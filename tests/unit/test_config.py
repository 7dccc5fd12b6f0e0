from __future__ import annotations

import types
import typing
from pathlib import Path

import pytest

from tests.unit.conftest import write_project
from wheelbarrow._config import OPTIONS, Config, load_config
from wheelbarrow.errors import ConfigError


def test_defaults_when_the_table_is_empty(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path), environ={})
    assert config.python == "3.11"
    assert config.groups == ("main",)
    assert config.build_from_source == ()
    assert config.wheelhouse == tmp_path.resolve() / "wheelhouse"
    assert config.glibc == "2.28"  # the default builder base is manylinux_2_28
    assert config.project_name == "demo"
    assert config.project_version == "1.0"


def test_pyproject_then_environment_then_command_line(tmp_path: Path) -> None:
    project = write_project(tmp_path, 'system-packages = ["libpq-dev"]\nwheelhouse = "from-toml"\npython = "3.11"')
    config = load_config(
        project,
        environ={"WHEELBARROW_WHEELHOUSE": "from-env", "WHEELBARROW_SYSTEM_PACKAGES": "libpq-dev, libffi-dev"},
        overrides={"wheelhouse": "from-cli"},
    )
    assert config.wheelhouse.name == "from-cli"
    assert config.system_packages == ("libpq-dev", "libffi-dev")
    env_only = load_config(project, environ={"WHEELBARROW_WHEELHOUSE": "from-env"})
    assert env_only.wheelhouse.name == "from-env"


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    project = write_project(tmp_path, 'system-package = ["libpq-dev"]')
    with pytest.raises(ConfigError, match=r"unknown key 'system-package'.*Did you mean 'system-packages'"):
        load_config(project, environ={})


def test_unknown_environment_variable_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"WHEELBARROW_PYTON.*Did you mean 'WHEELBARROW_PYTHON'"):
        load_config(write_project(tmp_path), environ={"WHEELBARROW_PYTON": "3.11"})


def test_unknown_command_line_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown option 'wheelhose'.*'wheelhouse'"):
        load_config(write_project(tmp_path), environ={}, overrides={"wheelhose": "x"})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("groups = 3", "must be a list of strings"),
        ('python = ["3.11"]', "must be a string"),
        ('python = "three"', "expected a CPython version"),
        ('debian-suite = "buster"', "not one of"),
        ('project-build = "magic"', "not one of"),
        ('glibc = "2"', "expected a version"),
        ('debian-suite = "bookworm"\npython = "3.12"', "ships CPython 3.11"),
    ],
)
def test_wrong_values_name_the_key(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(write_project(tmp_path, line), environ={})
    assert caught.value.tip


def test_debian_suite_sets_the_target_glibc(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path, 'debian-suite = "bookworm"'), environ={})
    assert config.glibc_tuple == (2, 36)


def test_build_from_source_names_are_normalised(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path, 'build-from-source = ["Psycopg2", "ruamel.yaml"]'), environ={})
    assert config.build_from_source == ("psycopg2", "ruamel-yaml")


def test_missing_pyproject_and_missing_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no pyproject\.toml"):
        load_config(tmp_path, environ={})
    (tmp_path / "pyproject.toml").write_text("[tool.wheelbarrow]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"no \[project\] name"):
        load_config(tmp_path, environ={})


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path, environ={})


def runtime_types(hint: object) -> tuple[type, ...]:
    """The classes a value of a type hint may have: ``Path | None`` -> (Path, NoneType); a Literal -> (str,)."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return (str,)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in runtime_types(arg))
    found = origin or hint
    assert isinstance(found, type)
    return (found,)


def test_every_option_is_parsed_to_its_declared_type(tmp_path: Path) -> None:
    """Each option's parser gives the type its Config field declares, for the default and a set value."""
    project = write_project(tmp_path)
    hints = typing.get_type_hints(Config)
    set_values = {"jobs": "3", "port": "8000", "keep-pip": "true", "lock": "poetry.lock", "glibc": "2.31"}
    for config in (load_config(project, environ={}), load_config(project, environ={}, overrides=set_values)):
        for option in OPTIONS:
            value = getattr(config, option.attribute)
            assert isinstance(value, runtime_types(hints[option.attribute])), (option.key, value)
    assert (config.jobs, config.port, config.keep_pip, config.glibc) == (3, 8000, True, "2.31")
    assert config.lock == (project / "poetry.lock").resolve()


def test_readme_documents_every_option() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for option in OPTIONS:
        assert f"| `{option.key}` | `{option.env}` |" in readme, option.key


def test_a_dynamic_version_is_left_to_the_build(tmp_path: Path) -> None:
    """dynamic = ["version"]: no version in the config; the image tag then comes from the wheelhouse."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "Dyn_App"\ndynamic = ["version"]\n\n[build-system]\nrequires = ["hatchling"]\n'
    )
    config = load_config(tmp_path, environ={})
    assert config.project_version is None
    assert config.image_tag == ""  # computed from the manifest's version once the wheel is built
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match="no version, static or dynamic"):
        load_config(tmp_path, environ={})
