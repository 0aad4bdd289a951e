#!/usr/bin/env python3
"""A stand-in for qemu-system-x86_64 in `kettle build` tests: it plays the
guest without booting anything. It reads the request disk, asks the host's
simulated PSP for a report over the PSP socket (the real framed protocol),
and writes an output disk in kettle-init's layout, then "powers off".

FAKE_QEMU_MODE selects the behaviour: ok (default), fail (error.json),
tamper (an artifact that differs from its subject), hang (never exits),
crash (exits after the build line, writing nothing).
FAKE_QEMU_SLEEP=SECONDS makes the build step take that long (one compiler
line, then silence), as a slow TCG rustc does. FAKE_QEMU_PIDFILE=PATH
records, one per line, this process's pid, the pid of a child it starts in
its process group (a stand-in for QEMU's helpers, which must die with it),
and the PSP socket path, so a test can check that nothing outlives a build.
FAKE_QEMU_HOSTILE=1 makes the guest's words hostile to the operator's
terminal: escape sequences (an OSC 52 clipboard write, a clear-screen, a
green VERIFIED) in console lines, in error.json's message and in an
artifact name of status.json; the host must print every one escaped.
"""
import subprocess
import hashlib
import io
import json
import os
import socket
import struct
import sys
import tarfile
import time

args = sys.argv[1:]
if args == ["--version"]:
    print("QEMU emulator version 10.0.2 (kettle test stand-in)")
    sys.exit(0)

mode = os.environ.get("FAKE_QEMU_MODE", "ok")
HOSTILE = os.environ.get("FAKE_QEMU_HOSTILE") == "1"
# What a hostile guest writes to the operator's terminal through the host.
OSC52 = "\x1b]52;c;ZXZpbA==\x07"
CLEAR = "\x1b[2J\x1b[H"
GREEN_VERIFIED = "\x1b[32mVERIFIED\x1b[0m"
EVIL = OSC52 + CLEAR + GREEN_VERIFIED if HOSTILE else ""


def opt_values(flag):
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def sub(value, key):
    for part in value.split(","):
        if part.startswith(key + "="):
            return part[len(key) + 1:]
    return None


drives = {sub(d, "id"): sub(d, "file") for d in opt_values("-drive")}
psp_socket = next((sub(c, "path") for c in opt_values("-chardev") if sub(c, "id") == "psp"), None)
print("[    0.000000] Linux version 6.12 (stand-in)", flush=True)
print(f"[INFO] [boot] ok in 0.01s: kettle-init as PID 1{EVIL}", flush=True)
if HOSTILE:
    print(f"{EVIL}\r{GREEN_VERIFIED}", flush=True)

with tarfile.open(drives["req"], "r:") as t:
    request = json.load(t.extractfile("request.json"))
print(f"[INFO] [request] ok in 0.00s: {request['repository']} {request['ref']} @ {request['commit']}", flush=True)
if request["mode"] == "upstream":
    # Upstream mode: no cache disk, a NIC, and the untrusted download hints in the request.
    assert "cache" not in drives, drives
    assert "-netdev" in args, args
    print(f"[INFO] [fetch] ok in 0.01s: upstream from {request['upstream']['source_archive_url']}", flush=True)
if "cache" in drives:
    with tarfile.open(drives["cache"], "r:") as t:
        names = t.getnames()
    assert f"git/{request['commit']}" in names, names
    assert f"source/{request['commit']}" in names, names
    print(f"[INFO] [fetch] ok in 0.01s: cache disk: {len(names)} entries", flush=True)

files = {}


def add(name, data):
    files[name] = data


pidfile = os.environ.get("FAKE_QEMU_PIDFILE")
if pidfile:
    helper = subprocess.Popen(["sleep", "3600"])
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n{helper.pid}\n{psp_socket}\n")
    os.rename(pidfile + ".tmp", pidfile)

print("[INFO] [verify] ok in 0.01s: inputs verified", flush=True)
print("[INFO] [unpack] ok in 0.01s: unpacked", flush=True)
print(f"  build|    Compiling serde_derive v1.0.228{EVIL}", flush=True)
time.sleep(float(os.environ.get("FAKE_QEMU_SLEEP", "0")))

if mode == "hang":
    time.sleep(3600)

if mode == "crash":
    # Ends without a result (no output disk, no FAILED line): the host shows the console's tail.
    sys.exit(1)

if mode == "fail":
    print("[ERROR] [verify] FAILED after 0.01s: inputs: rootfs: sha256 mismatch (input: rootfs)", flush=True)
    message = "rootfs: sha256 mismatch" + (f"{EVIL}\n{GREEN_VERIFIED}" if HOSTILE else "")
    add("error.json", json.dumps({"ok": False, "step": "verify", "message": message, "input": "rootfs"}).encode())
else:
    artifact = b"hello from a kettle build\n"
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "out/hello.txt", "digest": {"sha256": hashlib.sha256(artifact).hexdigest()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://kettle.confidential.ai/script/v1",
                "externalParameters": {"repository": request["repository"], "ref": request["ref"]},
                "resolvedDependencies": [{
                    "name": "source",
                    "uri": f"git+{request['repository']}@{request['ref']}",
                    "digest": {"gitCommit": request["commit"]},
                }],
            },
            "runDetails": {"builder": {"id": "https://kettle.confidential.ai/simulated-builder/v1"}},
        },
    }
    # ASCII-only, no floats: sorted compact JSON is RFC 8785 canonical.
    provenance = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    report_data = hashlib.sha256(provenance).digest() + bytes(32)
    s = socket.socket(socket.AF_UNIX)
    s.connect(psp_socket)
    s.sendall(b"KPSP" + struct.pack("<HHI", 1, 1, 68) + report_data + struct.pack("<I", 0))

    def read_exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            assert chunk, "PSP closed the connection"
            buf += chunk
        return buf

    magic, version, kind, length = struct.unpack("<4sHHI", read_exact(12))
    body = read_exact(length)
    assert kind == 2, body
    (rlen,) = struct.unpack("<I", body[:4])
    report = body[4:4 + rlen]
    (clen,) = struct.unpack("<I", body[4 + rlen:8 + rlen])
    chain = body[8 + rlen:8 + rlen + clen]
    s.close()
    print("[INFO] [attest] ok in 0.01s: simulated report", flush=True)
    add("artifacts/out/hello.txt", b"evil\n" if mode == "tamper" else artifact)
    add("provenance.json", provenance)
    add("evidence", report)
    add("chain.pem", chain)
    listed = ["out/hello.txt"] + ([f"out/{EVIL}"] if HOSTILE else [])
    add("status.json", json.dumps({"ok": True, "attested": True, "attestation": "simulated", "artifacts": listed}).encode())
    print("[INFO] build succeeded: 1 artifacts, attested", flush=True)

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
    for name, data in files.items():
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
with open(drives["out"], "r+b") as disk:
    disk.write(buf.getvalue())
print("[INFO] powering off", flush=True)
