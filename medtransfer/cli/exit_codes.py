"""The exit codes of the ``medtransfer`` command, defined once for every command.

0 success; 1 runtime error (a :class:`~medtransfer.errors.MedTransferError`: missing weights, an
unreadable file, a failed checksum); 2 usage, config or run-folder error (fixed by changing the
command line); 130 interrupted (Ctrl-C), as shells report SIGINT.

Example:
    >>> EXIT_OK, EXIT_RUNTIME, EXIT_USAGE
    (0, 1, 2)
"""

from __future__ import annotations

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_RUNTIME", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
