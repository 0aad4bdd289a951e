#!/usr/bin/env python3
"""Checks a Kettle provenance file with independent implementations.

Usage: peer_check.py FILE

1. The bytes must be RFC 8785 canonical: rfc8785.dumps(json.loads(b)) == b.
2. The Statement must parse strictly (no unknown fields) into the in-toto
   attestation Statement protobuf and pass the package's Statement.validate().
3. The predicate must be SLSA provenance v1: it must parse strictly into the
   package's Provenance protobuf (field names, types, RFC 3339 timestamps,
   base64 bytes), every ResourceDescriptor in it must pass the package's
   ResourceDescriptor.validate(), and the fields SLSA marks REQUIRED must be set.

Exit 0 when every check passes, 1 naming the first failed check, 2 on usage errors.
"""

import json
import sys

import rfc8785
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"


class Rejected(Exception):
    """A check failed; the message names it."""


def no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise Rejected(f"duplicate object key among {keys}")
    return dict(pairs)


def check_statement(raw: bytes, predicate_type: str):
    """Steps 1 and 2, shared with the VSA checker: returns (the parsed JSON, the Statement protobuf)."""
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Rejected(f"not UTF-8 JSON: {e}")

    # 1. RFC 8785 canonical form, byte for byte.
    try:
        canonical = rfc8785.dumps(doc)
    except rfc8785.CanonicalizationError as e:
        raise Rejected(f"rfc8785 cannot canonicalize it: {e}")
    if canonical != raw:
        raise Rejected("not RFC 8785 canonical: rfc8785.dumps(json.loads(bytes)) differs from the bytes")

    # 2. in-toto Statement v1.
    try:
        pb = json_format.Parse(raw.decode("utf-8"), statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
    except (json_format.ParseError, ValueError) as e:
        raise Rejected(f"in-toto Statement check failed: {e}")
    if pb.predicate_type != predicate_type:
        raise Rejected(f"predicateType is {pb.predicate_type!r}, expected {predicate_type!r}")
    return doc, pb


def check(raw: bytes) -> None:
    doc, _ = check_statement(raw, SLSA_PROVENANCE_V1)

    # 3. SLSA provenance v1 predicate.
    predicate = doc["predicate"]
    try:
        prov = json_format.ParseDict(predicate, provenance_pb2.Provenance())
    except json_format.ParseError as e:
        raise Rejected(f"SLSA provenance predicate does not fit the schema: {e}")
    bd, rd = prov.build_definition, prov.run_details
    if not bd.build_type:
        raise Rejected("buildDefinition.buildType is REQUIRED")
    if "externalParameters" not in predicate.get("buildDefinition", {}):
        raise Rejected("buildDefinition.externalParameters is REQUIRED")
    if not rd.builder.id:
        raise Rejected("runDetails.builder.id is REQUIRED")
    lists = {
        "resolvedDependencies": bd.resolved_dependencies,
        "byproducts": rd.byproducts,
        "builderDependencies": rd.builder.builder_dependencies,
    }
    for field, descriptors in lists.items():
        for i, d in enumerate(descriptors):
            try:
                ResourceDescriptor.copy_from_pb(d).validate()
            except ValueError as e:
                raise Rejected(f"{field}[{i}]: {e}")
    meta = rd.metadata
    if meta.HasField("started_on") and meta.HasField("finished_on"):
        if meta.finished_on.ToNanoseconds() < meta.started_on.ToNanoseconds():
            raise Rejected("metadata.finishedOn is before startedOn")


def run(argv, check, ok: str) -> int:
    """A checker's command line: `SCRIPT FILE`; exit 0 (printing `ok`), 1 naming the failed check, 2 on usage."""
    if len(argv) != 2:
        print(f"usage: {argv[0]} FILE", file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        raw = f.read()
    try:
        check(raw)
    except Rejected as e:
        print(f"REJECTED: {e}", file=sys.stderr)
        return 1
    print(ok)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv, check, "OK: RFC 8785 canonical, in-toto Statement v1 valid, SLSA provenance v1 schema valid"))
