#!/usr/bin/python3
"""Checks that src/ keeps the layout docs/ARCHITECTURE.md describes.

- A folder includes only the folders below it (ALLOWED); process folders never
  include each other. The one exception is the master's contract with its
  children: smtpd, qmgr and local include daemon/runtime.h, and the master
  includes the smtpd headers it checks listener settings with.
- Every header opens with a comment naming its module ("/* name: ...").
- No file is longer than 800 lines unless docs/ARCHITECTURE.md gives the reason
  on a line of its "Long files" list, and that list names no file that is not.
Exit status 1 with one line per violation."""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")

# Which folders each folder may include (besides itself).
LAYERS = {
    "util": set(),
    "conf": {"util"},
    "dns": {"util"},
    "auth": {"util"},
    "smtp": {"util"},
    "maps": {"conf", "util"},
    "tls": {"maps", "conf", "util"},
    "spool": {"util"},
    "msg": {"spool", "util"},
    "mailauth": {"msg", "dns", "util"},
    "smtpc": {"smtp", "tls", "dns", "util"},
    "smtpd": {"smtp", "spool", "msg", "mailauth", "maps", "tls", "dns", "auth", "conf", "util"},
    "qmgr": {"smtpc", "smtp", "spool", "msg", "mailauth", "maps", "tls", "dns", "conf", "util"},
    "local": {"spool", "msg", "maps", "conf", "util"},
    "capture": {"spool", "msg", "maps", "conf", "util"},
    "daemon": {"spool", "mailauth", "maps", "tls", "conf", "util"},
    # capture mode: the store's index, the HTTP API, the web page (its MIME view
    # needs util only; the rest of the folder reads the spool).
    "capture": {"spool", "msg", "maps", "conf", "util"},
    "cli": {"daemon", "spool", "msg", "mailauth", "smtp", "maps", "auth", "dns", "conf", "util"},
}
# The master's contract with its children: the only edges between process folders.
CONTRACT = {
    ("smtpd", "daemon/runtime.h"), ("qmgr", "daemon/runtime.h"), ("local", "daemon/runtime.h"),
    ("capture", "daemon/runtime.h"),
    ("daemon", "smtpd/smtpd_session.h"), ("daemon", "smtpd/smtpd_policy.h"),
}
LONG_LIMIT = 800


def main():
    errors = []
    arch = open(os.path.join(ROOT, "docs", "ARCHITECTURE.md")).read()
    # only the list under "Long files", one "- `src/x.c`: reason" (or
    # "- `src/x.c` (about N lines): reason") per file
    listed = arch.split("Long files (over 800 lines)", 1)[-1].split("\n## ", 1)[0]
    long_ok = set(re.findall(r"^- `src/([\w/]+\.[ch])`(?: \([^)]*\))?: \S", listed, re.M))
    for dirpath, _, files in os.walk(SRC):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, SRC)
            folder = rel.split("/")[0] if "/" in rel else None
            text = open(path).read()
            if folder is not None and folder not in LAYERS:
                errors.append(f"src/{rel}: folder {folder}/ is not in scripts/check-layout.py's table")
                continue
            for inc in re.findall(r'^#include "([^"]+)"', text, re.M):
                to = inc.split("/")[0]
                if folder is None or to == folder:
                    continue
                if to not in LAYERS[folder] and (folder, inc) not in CONTRACT:
                    errors.append(f"src/{rel}: {folder}/ may not include {inc}")
            if name.endswith(".h"):
                module = name[:-2]
                if not re.match(r"/\* " + re.escape(module) + r"(\.h)?:", text):
                    errors.append(f"src/{rel}: header does not open with '/* {module}: what it is for'")
            lines = text.count("\n")
            if lines > LONG_LIMIT and rel not in long_ok:
                errors.append(f"src/{rel}: {lines} lines, and docs/ARCHITECTURE.md's long-file list gives no reason")
    for rel in sorted(long_ok):
        path = os.path.join(SRC, rel)
        if not os.path.exists(path) or open(path).read().count("\n") <= LONG_LIMIT:
            errors.append(f"docs/ARCHITECTURE.md: src/{rel} is on the long-file list but is not over {LONG_LIMIT} lines")
    for e in errors:
        print(e)
    if errors:
        print(f"check-layout: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
