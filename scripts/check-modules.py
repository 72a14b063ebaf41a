#!/usr/bin/env python3
"""Checks that the modules of src/ stack: no module reaches itself through `crate::` imports.

A module is a top-level file or folder of src/ (`src/cache/` is one module, `cache`). An edge
a -> b is any `crate::b` path, or `b` inside `use crate::{...}`, in a's files outside their
`#[cfg(test)] mod tests`. Prints the modules in an order where each depends only on those before
it, or the cycles, and fails on a cycle; fails too when lib.rs lists a module above one it uses
(lib.rs documents the modules from the bottom up). Run by `make lint`.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
SKIP = {"lib", "tests"}


def modules():
    mods = {}
    for dirpath, _, files in os.walk(SRC):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(dirpath, f)
                top = os.path.relpath(path, SRC).split(os.sep)[0].removesuffix(".rs")
                if top not in SKIP:
                    mods.setdefault(top, []).append(path)
    return mods


def edges(mods):
    out = {m: set() for m in mods}
    for m, files in mods.items():
        for path in files:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
            names = re.findall(r"crate::([a-z_][a-z0-9_]*)", text)
            for group in re.findall(r"use crate::\{([^}]*)\}", text):
                names += re.findall(r"\b([a-z_][a-z0-9_]*)\b", group)
            out[m] |= {n for n in names if n in mods and n != m}
    return out


def main():
    graph = edges(modules())
    order, placed = [], set()
    while len(placed) < len(graph):
        ready = sorted(m for m in graph if m not in placed and graph[m] <= placed)
        if not ready:
            stuck = sorted(m for m in graph if m not in placed)
            print("check-modules: these modules of src/ form an import cycle:", file=sys.stderr)
            for m in stuck:
                print(f"  {m} -> {', '.join(sorted(graph[m] - placed))}", file=sys.stderr)
            return 1
        order += ready
        placed |= set(ready)
    with open(os.path.join(SRC, "lib.rs"), encoding="utf-8") as fh:
        listed = re.findall(r"^mod ([a-z_][a-z0-9_]*);", fh.read(), flags=re.M)
    position = {m: i for i, m in enumerate(listed)}
    misplaced = [
        (m, d)
        for m in listed
        for d in sorted(graph.get(m, ()))
        if position.get(d, len(listed)) > position[m]
    ]
    for m, d in misplaced:
        print(f"check-modules: lib.rs lists {m} above {d}, which it uses", file=sys.stderr)
    if misplaced:
        return 1
    print("check-modules: no cycle; modules from the bottom up:", " ".join(order))
    return 0


if __name__ == "__main__":
    sys.exit(main())
