"""Smaller parts of the core contract: one-line errors a family author meets first."""

from __future__ import annotations

COURIER = {"module": "tests.plugins.courier"}


def _one_error_line(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_hook_implementation_with_a_wrong_argument_name_is_one_line(imperfect):
    result = imperfect("check", plugins={"wrong": {"module": "tests.plugins.wrong_argument"}})
    line = _one_error_line(result)
    assert "plugin 'wrong'" in line
    assert "'plugn'" in line and "(plugin, platform, app)" in line


def test_renaming_a_family_in_plugins_toml_is_one_line(imperfect):
    assert imperfect("db", "migrate", plugins={"courier": COURIER}).returncode == 0
    for command in (("db", "migrate"), ("check",)):
        line = _one_error_line(imperfect(*command, plugins={"parcels": COURIER}))
        assert "plugin 'parcels'" in line
        assert "written for the family name 'courier'" in line
        assert "[plugins.courier]" in line
