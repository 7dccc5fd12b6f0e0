from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.conftest import write_project
from wheelbarrow._config import OPTIONS, load_config
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


def test_every_option_has_help_and_an_env_name() -> None:
    for option in OPTIONS:
        assert option.help
        assert option.env.startswith("WHEELBARROW_")


def test_readme_documents_every_option() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for option in OPTIONS:
        assert f"| `{option.key}` | `{option.env}` |" in readme, option.key
