"""medtransfer.evaluation: not yet implemented (see the issue tracker)."""
