#!/usr/bin/env python3
"""Checks a Kettle VSA with independent implementations.

Usage: vsa_check.py FILE

1. The bytes must be RFC 8785 canonical: rfc8785.dumps(json.loads(b)) == b.
2. The Statement must parse strictly (no unknown fields) into the in-toto
   attestation Statement protobuf and pass the package's Statement.validate().
3. The predicate must be a SLSA VSA v1: it must parse strictly into the package's
   VerificationSummary protobuf, with the fields SLSA marks REQUIRED set and
   verificationResult and verifiedLevels from the spec's vocabulary. The
   package's protobuf (0.9.3) departs from the SLSA VSA v1 spec in two fields,
   checked here by hand before the strict parse: it has no verifier.version (a
   map of component to version), and its verifiedLevels is one string where the
   spec has an array of SlsaResult (a one-element array is passed as that string).

Exit 0 when every check passes, 1 naming the first failed check, 2 on usage errors.
"""

import copy
import sys
from pathlib import Path

from google.protobuf import json_format
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2

# Steps 1 and 2 and the command line are the provenance checker's (one implementation).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "provenance" / "tests"))
from peer_check import Rejected, check_statement, run  # noqa: E402

VSA_V1 = "https://slsa.dev/verification_summary/v1"
RESULTS = {"PASSED", "FAILED"}
LEVELS = {"SLSA_BUILD_LEVEL_0", "SLSA_BUILD_LEVEL_1", "SLSA_BUILD_LEVEL_2", "SLSA_BUILD_LEVEL_3", "FAILED"}


def check(raw: bytes) -> None:
    doc, _ = check_statement(raw, VSA_V1)

    predicate = copy.deepcopy(doc["predicate"])
    version = predicate.get("verifier", {}).pop("version", None)
    if version is not None and not (
        isinstance(version, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in version.items())
    ):
        raise Rejected("verifier.version is not a map of strings")
    levels = predicate.get("verifiedLevels")
    if not isinstance(levels, list) or not levels or any(l not in LEVELS for l in levels):
        raise Rejected(f"verifiedLevels {levels!r} is not a non-empty array of SLSA levels")
    if (predicate.get("verificationResult") == "FAILED") != ("FAILED" in levels):
        raise Rejected("verifiedLevels and verificationResult disagree")
    if len(levels) != 1:
        raise Rejected("verifiedLevels: the package's schema holds one level; Kettle writes one")
    predicate["verifiedLevels"] = levels[0]
    try:
        vsa = json_format.ParseDict(predicate, vsa_pb2.VerificationSummary())
    except json_format.ParseError as e:
        raise Rejected(f"VSA predicate does not fit the schema: {e}")
    for field, value in [
        ("verifier.id", vsa.verifier.id),
        ("resourceUri", vsa.resource_uri),
        ("policy.uri", vsa.policy.uri),
        ("verificationResult", vsa.verification_result),
    ]:
        if not value:
            raise Rejected(f"{field} is REQUIRED")
    if not vsa.HasField("time_verified"):
        raise Rejected("timeVerified is REQUIRED")
    if vsa.verification_result not in RESULTS:
        raise Rejected(f"verificationResult {vsa.verification_result!r} is not PASSED or FAILED")
    # Each input attestation was parsed strictly above; it must also say which and what.
    for i, a in enumerate(vsa.input_attestations):
        if not a.uri or not a.digest:
            raise Rejected(f"inputAttestations[{i}] needs a uri and a digest")


if __name__ == "__main__":
    sys.exit(run(sys.argv, check, "OK: RFC 8785 canonical, in-toto Statement v1 valid, SLSA VSA v1 schema valid"))
