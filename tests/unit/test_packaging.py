"""The installed distribution carries what the installed CLI needs outside a checkout."""

from importlib import metadata


def test_the_installed_package_ships_the_store_schema():
    files = {str(path) for path in metadata.files("dynprov") or ()}
    assert "ryu_apps/store/dynprov.ovsschema" in files, sorted(files)[:20]
