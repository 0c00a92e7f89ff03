"""``dynprov mac encode`` and ``dynprov mac decode``: output and exit codes."""

import argparse

import pytest

from ryu_apps.cli import mac


def run(argv):
    """Parse like ``dynprov`` does and run the chosen subcommand."""
    parser = argparse.ArgumentParser(prog="dynprov")
    subparsers = parser.add_subparsers(dest="command", required=True)
    mac.register(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


def test_decode_patent_example(capsys):
    assert run(["mac", "decode", "--scheme", "prefix/16", "00:FA:83:91:DE:1B"]) == 0
    assert capsys.readouterr().out == "00:fa:83:91:de:1b template 250 (0x00FA)\n"


def test_decode_default_scheme_is_prefix16(capsys):
    assert run(["mac", "decode", "00:fc:00:00:00:01", "00-FE-00-00-00-02"]) == 0
    assert capsys.readouterr().out == ("00:fc:00:00:00:01 template 252 (0x00FC)\n"
                                       "00:fe:00:00:00:02 template 254 (0x00FE)\n")


def test_decode_reports_every_bad_mac_and_exits_2(capsys):
    code = run(["mac", "decode", "00:fa:00:00:00:01", "01:00:5e:00:00:01", "nonsense",
                "00:fb:00:00:00:01"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ("00:fa:00:00:00:01 template 250 (0x00FA)\n"
                   "00:fb:00:00:00:01 template 251 (0x00FB)\n")
    assert err.splitlines() == [
        "dynprov: error: decode 01:00:5e:00:00:01 under prefix/16: "
        "multicast MAC (I/G bit set) is never a VM identifier",
        "dynprov: error: decode under prefix/16: 'nonsense' is not a MAC address: "
        "expected six hex octets separated by ':' or '-', like 00:fa:83:91:de:1b",
    ]


def test_decode_with_table_file(tmp_path, capsys):
    table = tmp_path / "macs.yaml"
    table.write_text('entries:\n  "02:aa:00:00:00:00/16": 0x00FA\n')
    assert run(["mac", "decode", "--scheme", f"table:{table}", "02:aa:00:00:00:07",
                "02:ab:00:00:00:07"]) == 2
    out, err = capsys.readouterr()
    assert out == "02:aa:00:00:00:07 template 250 (0x00FA)\n"
    assert "decode 02:ab:00:00:00:07 under table: MAC matches no table entry" in err


def test_decode_bad_scheme_exits_2(capsys):
    assert run(["mac", "decode", "--scheme", "prefix/8", "00:fa:00:00:00:01"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("dynprov: error: identifier scheme 'prefix/8': ")


@pytest.mark.parametrize("argv, expected", [
    (["--template", "250", "--unique", "1"], "00:fa:00:00:00:01"),
    (["--template", "0x00FA", "--unique", "0x8391DE1B"], "00:fa:83:91:de:1b"),
    (["--scheme", "prefix/12", "--template", "0x00F", "--unique", "5"], "00:f0:00:00:00:05"),
    (["--scheme", "interleave", "--template", "250", "--unique", "0"], "24:3f:2e:cc:c5:e3"),
])
def test_encode(capsys, argv, expected):
    assert run(["mac", "encode", *argv]) == 0
    assert capsys.readouterr().out == expected + "\n"


def test_encode_random_is_repeatable_with_seed_and_decodes_back(capsys):
    argv = ["mac", "encode", "--scheme", "interleave", "--template", "250",
            "--random", "--seed", "7"]
    assert run(argv) == 0
    first = capsys.readouterr().out.strip()
    assert run(argv) == 0
    assert capsys.readouterr().out.strip() == first
    assert run(["mac", "decode", "--scheme", "interleave", first]) == 0
    assert "template 250 (0x00FA)" in capsys.readouterr().out


def test_encode_random_without_seed(capsys):
    assert run(["mac", "encode", "--template", "250", "--random"]) == 0
    assert capsys.readouterr().out.startswith("00:fa:")


@pytest.mark.parametrize("argv, message", [
    (["--template", "0x0100", "--unique", "1"], "template id has bit 0x0100 set, the I/G bit"),
    (["--template", "0", "--unique", "0"], "gives the all-zero MAC"),
    (["--template", "65536", "--unique", "1"], "template id 65536 out of range"),
    (["--template", "250", "--unique", "0x100000000"], "unique id 4294967296 out of range"),
    (["--template", "0x0100", "--random"], "random unique id for template 256 (0x0100)"),
    (["--template", "250", "--unique", "1", "--seed", "3"], "--seed only applies with --random"),
    (["--scheme", "table:/nonexistent/macs.yaml", "--template", "1", "--unique", "0"],
     "/nonexistent/macs.yaml: cannot read table file"),
])
def test_encode_refusals_exit_2_without_traceback(capsys, argv, message):
    assert run(["mac", "encode", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("dynprov: error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["encode", "--template", "250"], "one of the arguments --unique --random is required"),
    (["encode", "--template", "250", "--unique", "1", "--random"], "not allowed with argument"),
    (["encode", "--template", "25x", "--unique", "1"],
     "argument --template: value '25x' is not a non-negative decimal (250) or hex (0x00FA)"),
    (["encode", "--unique", "1"], "the following arguments are required: --template"),
    (["decode"], "the following arguments are required: MAC"),
    ([], "required: "),
])
def test_usage_errors_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        run(["mac", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
