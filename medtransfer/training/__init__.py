"""medtransfer.training: not yet implemented (see the issue tracker)."""
