"""``dynprov demo`` and its modes (argument handling only; the demos run in integration tests)."""

import pytest

from ryu_apps.cli.main import build_parser


def test_demo_modes():
    parser = build_parser()
    plain = parser.parse_args(["demo"])
    assert not plain.no_migration and not plain.distributed
    assert parser.parse_args(["demo", "--distributed"]).distributed
    assert parser.parse_args(["demo", "--no-migration"]).no_migration


def test_demo_modes_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--distributed", "--no-migration"])
    assert "not allowed with argument" in capsys.readouterr().err
