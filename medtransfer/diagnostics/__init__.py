"""medtransfer.diagnostics: not yet implemented (see the issue tracker)."""
