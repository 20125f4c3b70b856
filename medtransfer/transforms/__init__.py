"""medtransfer.transforms: not yet implemented (see the issue tracker)."""
