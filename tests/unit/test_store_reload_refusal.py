"""What a process in store mode answers to a library reload (the message itself)."""

from types import SimpleNamespace

from ryu_apps.store.hook import reload_refusal

OPTIONS = SimpleNamespace(store="tcp:127.0.0.1:6641,tcp:127.0.0.1:6642",
                          templates="/etc/dynprov/templates")


def test_the_refusal_names_the_files_not_read_and_the_command_that_changes_the_library():
    sync = SimpleNamespace(library_generation=7)
    message = reload_refusal(OPTIONS, sync)
    assert message == (
        "library reload refused: with [dynprov] store = tcp:127.0.0.1:6641,tcp:127.0.0.1:6642 "
        "a reload does not read the YAML files (/etc/dynprov/templates); this process runs "
        "the store's library (generation 7). Change the library with: dynprov store "
        "load-templates <dir> --remote tcp:127.0.0.1:6641,tcp:127.0.0.1:6642 [--domain NAME] "
        "(every process of the store puts it in force)")


def test_before_the_store_holds_a_library_the_start_up_one_is_said_to_stay():
    for sync in (None, SimpleNamespace(library_generation=0)):  # starting, or empty store
        message = reload_refusal(OPTIONS, sync)
        assert "the store holds no library yet: this process keeps the one it read at " \
               "start-up" in message
        assert "dynprov store load-templates <dir> --remote tcp:127.0.0.1:6641" in message
