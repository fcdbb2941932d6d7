#!/usr/bin/env python3
"""Prints the graph of Accord's top-level modules (who imports whom, from
`crate::` paths in src/) and fails when it has a circle.

Usage: scripts/module-graph.py [--dot]

Why its own script: `cargo modules` needs a nightly-built tool; this reads
the sources the same way a newcomer would, and runs in `make test`.
Tests inside a module (`mod tests`, `tests.rs`, `proptests.rs`) are left
out: a test may reach anywhere.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
USE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
TEST_FILES = {"tests.rs", "proptests.rs"}


def top_module(rel):
    """The top-level module a file belongs to (`broker/conn.rs` → broker)."""
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def is_module(name):
    """Whether `crate::name` is a top-level module (not an item of lib.rs)."""
    return os.path.exists(os.path.join(SRC, name + ".rs")) or os.path.isdir(
        os.path.join(SRC, name)
    )


def strip_tests(text):
    """Drops `#[cfg(test)] mod … { … }` blocks and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def graph():
    edges = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs") or f in TEST_FILES:
                continue
            rel = os.path.relpath(os.path.join(root, f), SRC)
            if rel in ("main.rs", "lib.rs"):
                continue
            src = top_module(rel)
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                text = strip_tests(fh.read())
            edges.setdefault(src, set()).update(
                dst for dst in USE.findall(text) if dst != src and is_module(dst)
            )
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = graph()
    if "--dot" in sys.argv:
        print("digraph accord {")
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
    else:
        for a in sorted(edges):
            print(f"{a:12} -> {', '.join(sorted(edges[a])) or '(nothing)'}")
    found = cycles(edges)
    for comp in found:
        inner = [f"{a}->{b}" for a in comp for b in sorted(edges[a]) if b in comp]
        print(f"circle: {', '.join(comp)}  ({' '.join(inner)})", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
