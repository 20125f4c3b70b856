"""The entry points: the ``medtransfer`` command, its YAML run configs and the offline demo.

Nothing in the library imports this package (an import-linter contract checks it); it parses
arguments, validates configs and calls the public API. :mod:`.command` holds :func:`main` and
:func:`build_parser`; :mod:`.inspect`, :mod:`.weights`, :mod:`.runs` (``train``, ``evaluate``),
:mod:`.predict` and :mod:`.demo` the commands; :mod:`.config` (with :mod:`.config_sections`,
:mod:`.config_evaluation`, :mod:`.config_messages`, :mod:`.config_yaml`) the run config;
:mod:`.checks` the checks the run commands make before the long steps; :mod:`.exit_codes` the
exit codes.

Example:
    >>> main(["weights", "fetch"])  # a usage error: NAME is missing
    2
"""

from medtransfer.cli.command import build_parser, main

__all__ = ["build_parser", "main"]
