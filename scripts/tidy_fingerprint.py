#!/usr/bin/python3
"""Fingerprints of ember's sources for scripts/tidy.sh: one line "FINGERPRINT PATH" per file.

A file's fingerprint is a SHA-256 over what clang-tidy's verdict on it depends on: the tidy
configuration (SEED: .clang-tidy, tidy.sh, the clang-tidy version), the file itself, and every
ember header it includes (src/, include/), as the last build recorded them (ninja's deps log).
A file the build has no (or stale) deps for gets "-": it is checked. System headers are left out:
they change only with a Debian package upgrade, and then a full `make tidy` re-records.

  tidy_fingerprint.py BUILD_DIR SEED FILE...
"""
import hashlib
import os
import re
import subprocess
import sys


def objects_by_source(build):
    """Maps each source (relative to the repository) to the object files built from it."""
    import json
    with open(os.path.join(build, "compile_commands.json")) as f:
        commands = json.load(f)
    objects = {}
    for entry in commands:
        match = re.search(r"\s-o\s+(\S+)", entry["command"])
        if match:
            source = os.path.relpath(entry["file"], REPO)
            objects.setdefault(source, []).append(match.group(1))
    return objects


def ember_deps(build):
    """Maps each object file to the ember headers (repository-relative) it was compiled with."""
    result = subprocess.run(["ninja", "-C", build, "-t", "deps"], capture_output=True, text=True,
                            check=False)
    deps, current = {}, None
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            current = line.split(":", 1)[0]
            # A stale entry (the source changed since) does not describe the file as it is now.
            deps[current] = None if "(STALE)" in line else []
        elif deps.get(current) is not None:
            path = os.path.normpath(os.path.join(build, line.strip()))
            relative = os.path.relpath(path, REPO)
            if relative.startswith(("src/", "include/")) and relative.endswith(".h"):
                deps[current].append(relative)
    return deps


def digest(path):
    with open(os.path.join(REPO, path), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    build, seed, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    objects, deps = objects_by_source(build), ember_deps(build)
    for path in files:
        # Objects of targets this build did not make (ember-engine-bench's copy of a CLI file,
        # built only by `make bench`) are not in the deps log and are skipped.
        built = [obj for obj in objects.get(path, []) if obj in deps]
        headers = set()
        known = bool(built)
        for obj in built:
            if deps[obj] is None:
                known = False
                break
            headers.update(deps[obj])
        if not known:
            print(f"- {path}")
            continue
        h = hashlib.sha256(seed.encode())
        for part in [path] + sorted(headers):
            h.update(f"{part} {digest(part)}\n".encode())
        print(f"{h.hexdigest()} {path}")


REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
if __name__ == "__main__":
    main()
