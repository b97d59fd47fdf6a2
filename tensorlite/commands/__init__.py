"""The ``tensorlite`` subcommands; each module has an ``add_<name>_parser(subparsers)``."""
