"""``dynprov``: the operator's command-line tool and its subcommands."""
