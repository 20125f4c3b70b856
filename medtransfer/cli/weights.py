"""``medtransfer weights list|verify|import|fetch``: encoder weights on this machine.

Offline first: ``list`` and ``verify`` read the cache and installed weight packages, ``import``
copies a file fetched on a connected machine into the cache (recording its SHA-256), and
``fetch`` downloads only where the machine is online.
"""

from __future__ import annotations

import argparse
import sys

from medtransfer.cli.exit_codes import EXIT_OK, EXIT_RUNTIME
from medtransfer.cli.table import table
from medtransfer.errors import InputPathError, MedTransferError, WeightsError

__all__ = ["fetch_command", "import_command", "list_command", "verify_command"]


def list_command(args: argparse.Namespace) -> int:
    """``weights list [--all]``: encoders with weights on this machine (``--all``: every one)."""
    import medtransfer as mt

    rows = [
        {
            "encoder": e.name,
            "family": e.family,
            "tested": "yes" if e.tested else "no",
            "weights": e.weights_source or "not on this machine",
        }
        for e in mt.encoders.list_encoders(available_offline=not args.all)
    ]
    print(table(rows, ("encoder", "family", "tested", "weights")))
    where = "on this machine" if not args.all else "supported"
    noun = "encoder" if len(rows) == 1 else "encoders"
    print(f"\n{len(rows)} {noun} {where}; cache: {mt.encoders.medtransfer_home() / 'weights'}")
    return EXIT_OK


def verify_command(args: argparse.Namespace) -> int:
    """``weights verify [NAMES]``: SHA-256 checks; exit 1 if one fails or has none recorded."""
    import medtransfer as mt

    names = args.names or [e.name for e in mt.encoders.list_encoders(available_offline=True)]
    rows, failed, unverified = [], 0, []
    for name in names:
        try:
            found = mt.encoders.resolve_weights(name, "imagenet")
        except MedTransferError as err:
            failed += 1
            rows.append({"encoder": name, "status": f"FAILED: {str(err).splitlines()[0]}"})
            continue
        if not found.verified:  # readable, but nobody recorded what it should be
            unverified.append((name, found.path))
        rows.append(
            {
                "encoder": name,
                "source": found.source.kind,
                "sha256": found.sha256[:16] + "...",
                "status": "ok (checksum matches)"
                if found.verified
                else "UNVERIFIED: no checksum recorded",
                "file": found.path,
            }
        )
    print(table(rows, ("encoder", "source", "sha256", "status", "file")))
    if failed:
        print(f"\n{failed} of {len(names)} failed verification.", file=sys.stderr)
    if unverified:
        print(
            f"\n{len(unverified)} of {len(names)} could not be verified: no checksum was "
            "recorded for them (e.g. a file copied into the cache by hand). Get the SHA-256 from "
            "where the file came from and record it by importing the file again:",
            file=sys.stderr,
        )
        for name, path in unverified:
            print(
                f"  medtransfer weights import {path} --name {name} --sha256 <SHA-256>",
                file=sys.stderr,
            )
    if failed or unverified:
        return EXIT_RUNTIME
    print(f"\n{len(names)} verified.")
    return EXIT_OK


def import_command(args: argparse.Namespace) -> int:
    """``weights import FILE --name NAME [--sha256 SUM]``: copy a weight file into the cache."""
    import medtransfer as mt

    if not args.file.is_file():
        raise InputPathError(f"Weight file {args.file} does not exist.")
    target = mt.encoders.import_weights(args.name, args.file, sha256=args.sha256)
    print(f"Imported {args.file} as {args.name!r}: {target}")
    print(f"SHA-256 {mt.encoders.sha256_file(target)} (stored next to it, checked on every load)")
    return EXIT_OK


def fetch_command(args: argparse.Namespace) -> int:
    """``weights fetch NAME``: download into the cache (refused, with the way round, offline)."""
    import medtransfer as mt
    from medtransfer.encoders.sources import is_online

    if not is_online():
        raise WeightsError(
            f"Cannot fetch {args.name!r}: this machine is offline (HF_HUB_OFFLINE or "
            "MEDTRANSFER_OFFLINE is set). On a connected machine run "
            f"`medtransfer weights fetch {args.name}`, copy the file it prints to this machine, "
            f"then run `medtransfer weights import FILE --name {args.name}`."
        )
    found = mt.encoders.resolve_weights(args.name, "imagenet")
    print(f"{args.name}: {found.source.kind} {found.path} (SHA-256 {found.sha256})")
    return EXIT_OK
