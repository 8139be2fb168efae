#!/usr/bin/env python3
"""The gateway's shape, checked: an import graph with no cycle, files and functions of a size a
reader takes in at once.

    python3 scripts/structure.py [gateway/src] [--max-file 400] [--max-fn 80] [--top config,server]
    python3 scripts/structure.py --self-test

The graph has one node per file (module) under the source root and an edge from a file to every
module it names through `crate::` or `super::` paths (in `use` lines and inline). A file's own
`mod child;` lines are not edges; a parent that *uses* its child is, so a parent and a child that
use each other are a cycle like any other. Test modules (`#[cfg(test)]` to the end of the file)
and `tests/` are left out of every count. A function may pass the limit when the line above its
`fn` says why in a comment that starts `// long:`.

The top modules (`--top`: the wiring, `config` and `server`, with their children) may import any
module; no other module may import them, so every part gets its settings and its neighbours
handed down rather than reaching up for the flags. The crate roots (`lib.rs`, `main.rs`) are
exempt. `--self-test` runs the checks over small made-up trees, one clean and one per kind of
problem, and fails unless each problem is found.

Exits 1 and prints each cycle, each import of a top module (strongly connected set of files), each long file and each long
function; prints the graph's size and exits 0 otherwise.
"""

import argparse
import re
import sys
from pathlib import Path

TEST_MOD = re.compile(r"(?:pub(?:\([^)]*\))?\s+)?mod\s")
USE = re.compile(r"\buse\s+(crate|super|self)((?:::[^;]*)?);", re.S)
INLINE = re.compile(r"\b(crate|super)((?:::\w+)+)")
FN = re.compile(r"^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")


def module_path(root: Path, file: Path) -> tuple:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def without_tests(text: str) -> list:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines) and TEST_MOD.match(lines[i + 1].lstrip()):
            return lines[:i]
    return lines


def expand(prefix: list, rest: str) -> list:
    """`a::{b, c::{d, e}}` after a prefix, as every full path it names."""
    rest = rest.strip()
    if not rest:
        return [prefix]
    if rest.startswith("::"):
        rest = rest[2:].strip()
    if rest.startswith("{"):
        inner, depth, items, start = rest[1:rest.rindex("}")], 0, [], 0
        for i, ch in enumerate(inner):
            depth += ch == "{"
            depth -= ch == "}"
            if ch == "," and depth == 0:
                items.append(inner[start:i])
                start = i + 1
        items.append(inner[start:])
        return [p for item in items if item.strip() for p in expand(prefix, item)]
    head = re.match(r"(\w+|\*)", rest)
    if not head:
        return [prefix]
    word = head.group(1)
    tail = rest[head.end():]
    tail = re.sub(r"^\s+as\s+\w+", "", tail)
    if word in ("self", "*"):
        return [prefix]
    return expand(prefix + [word], tail)


def resolve(base: str, path: list, here: tuple, modules: set):
    if base == "crate":
        start = []
    else:  # super / self, relative to the module the file is
        start = list(here)
        if base == "super":
            start = start[:-1]
    full = start + path
    while full and tuple(full) not in modules:
        full = full[:-1]
    return tuple(full) if full else None


def edges(root: Path, files: dict) -> dict:
    modules = set(files)
    graph = {m: set() for m in modules}
    for module, file in files.items():
        text = "\n".join(without_tests(file.read_text()))
        text = re.sub(r"//[^\n]*", "", text)
        named = []
        for base, rest in USE.findall(text):
            named += [(base, p) for p in expand([], rest)]
        for base, rest in INLINE.findall(text):
            named.append((base, rest.strip(":").split("::")))
        aliases = {}
        for base, path in named:
            target = resolve(base, path, module, modules)
            if target is not None and target != module and target != ():
                graph[module].add(target)
                if path and target[-1] == path[-1]:  # the name used is the module itself
                    aliases[target[-1]] = target
        # A module brought in by name (`use crate::ws;`) and used through it (`ws::upgrade::f`).
        for name, target in aliases.items():
            for rest in re.findall(rf"(?<![\w:]){name}((?:::\w+)+)", text):
                inner = resolve("crate", list(target) + rest.strip(":").split("::"), module, modules)
                if inner is not None and inner != module:
                    graph[module].add(inner)
    return graph


def cycles(graph: dict) -> list:
    """Tarjan's strongly connected components of more than one module."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def reaching_up(graph: dict, top: set) -> list:
    """Edges from a module outside the top modules to one inside them."""
    out = []
    for module in sorted(graph):
        if not module or module[0] in top:
            continue
        for target in sorted(graph[module]):
            if target and target[0] in top:
                out.append((module, target))
    return out


def long_functions(lines: list, limit: int) -> list:
    out = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j] == indent + "}":
                length = j - i + 1
                excused = i > 0 and lines[i - 1].strip().startswith("// long:")
                if length > limit and not excused:
                    out.append((i + 1, m.group(2), length))
                break
    return out


def check(root: Path, max_file: int, max_fn: int, top: set) -> tuple:
    """Every problem under `root`, and the number of files looked at."""
    files = {module_path(root, f): f for f in sorted(root.rglob("*.rs"))}
    graph = edges(root, files)
    problems = []
    for group in cycles(graph):
        names = ", ".join(str(files[m].relative_to(root)) for m in group)
        problems.append(f"cycle of {len(group)} files: {names}")
    for module, target in reaching_up(graph, top):
        problems.append(f"{files[module].relative_to(root)} imports {'::'.join(target)}, part of the wiring "
                        f"({', '.join(sorted(top))}): the wiring hands a part what it needs")
    for module, file in sorted(files.items()):
        lines = without_tests(file.read_text())
        if len(lines) > max_file:
            problems.append(f"{file}: {len(lines)} lines (limit {max_file})")
        for line, name, length in long_functions(lines, max_fn):
            problems.append(f"{file}:{line}: fn {name} is {length} lines (limit {max_fn})")
    return problems, len(files)


SELF_TEST = {
    "clean": ({
        "lib.rs": "pub mod config;\npub mod server;\npub mod ws;\npub use config::Config;\n",
        "config.rs": "use crate::ws::Kind;\npub struct Config { pub kind: Kind }\n",
        "server.rs": "use crate::config::Config;\nuse crate::ws;\nfn f(c: &Config) -> ws::Settings { ws::build(c.kind) }\n",
        "ws.rs": "pub enum Kind { A }\npub struct Settings;\npub fn build(_: Kind) -> Settings { Settings }\n"
                 "#[cfg(test)]\nmod tests {\n    use crate::config::Config;\n}\n",
    }, None),
    "reaching up": ({"push.rs": "use crate::config::Config;\npub fn f(c: &Config) {}\n"}, "push.rs imports config"),
    "reaching up inline": ({"push.rs": "pub fn f(p: &crate::server::Parts) {}\n"}, "push.rs imports server"),
    "cycle": ({"ws.rs": "use crate::push::f;\n", "push.rs": "use crate::ws::Kind;\n"}, "cycle of 2 files: push.rs, ws.rs"),
    "long fn": ({"push.rs": "fn long() {\n" + "    let _ = 1;\n" * 81 + "}\n"}, "fn long is 83 lines"),
}


def self_test() -> int:
    """The clean made-up tree passes; each other one is caught, for the reason it was made for."""
    import tempfile
    failed = 0
    for name, (changes, expected) in SELF_TEST.items():
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for file, text in {**SELF_TEST["clean"][0], **changes}.items():
                (root / file).write_text(text)
            problems, _ = check(root, 400, 80, {"config", "server"})
        ok = not problems if expected is None else len(problems) == 1 and expected in problems[0]
        failed += not ok
        print(f"self-test {name}: {'ok' if ok else 'FAILED'} {problems}")
    return 1 if failed else 0


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("root", nargs="?", default="gateway/src")
    args.add_argument("--max-file", type=int, default=400)
    args.add_argument("--max-fn", type=int, default=80)
    args.add_argument("--top", default="config,server", help="the wiring's modules, comma-separated")
    args.add_argument("--self-test", action="store_true")
    opts = args.parse_args()
    if opts.self_test:
        return self_test()
    root = Path(opts.root)
    problems, count = check(root, opts.max_file, opts.max_fn, set(opts.top.split(",")))

    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problems in {count} files under {root}")
        return 1
    print(f"{count} files under {root}: no import cycle, nothing below the wiring ({opts.top}) imports it, "
          f"none over {opts.max_file} lines, no fn over {opts.max_fn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
