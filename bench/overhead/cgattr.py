#!/usr/bin/python3
"""Where an extension's instructions go, from a callgrind output file.

Reads a callgrind.out file (any callgrind version writing format version 1,
with or without name compression) and prints, per statement, the instructions
spent by the functions of one shared object (the extension):

  self     instructions executed in the function itself;
  callees  inclusive instructions of the calls it makes to functions outside
           the object (GetCurrentTimestamp, hash_bytes_extended, sigsetjmp,
           ...), except the calls that would happen without the extension:
           the executor/utility chain its hooks pass control to
           (standard_ExecutorRun, the previous hook, ...);
  total    self + callees: what the extension adds, per function.

Given a second profile of the same program run on no statements (START_OUT),
its costs are subtracted function by function, so start-up work (_PG_init,
shared memory set-up) drops out and what is left is the cost of the
statements alone.

The grand total is what the extension costs per statement as seen from inside
the profile; compare it with the difference of the runs' totals (with and
without the extension), which is the real figure: it also holds what the
extension changes elsewhere (cache effects do not count here, but e.g. a
different path taken by PostgreSQL would).

Usage: cgattr.py CALLGRIND_OUT OBJECT_SUBSTRING STATEMENTS [START_OUT] [--chain NAME ...]
"""
import os
import re
import sys
from collections import defaultdict

# Calls that a hook makes on behalf of PostgreSQL itself: not extension cost.
DEFAULT_CHAIN = (
    "standard_ExecutorStart", "standard_ExecutorRun", "standard_ExecutorFinish",
    "standard_ExecutorEnd", "standard_ProcessUtility", "standard_planner",
    # hooks of other preloaded modules, when the extension chains to them
    "pgss_ExecutorStart", "pgss_ExecutorRun", "pgss_ExecutorFinish",
    "pgss_ExecutorEnd", "pgss_ProcessUtility", "pgss_post_parse_analyze",
    "pgss_planner",
)

_compressed = re.compile(r"^\((\d+)\)(?: (.*))?$")


class Profile:
    def __init__(self):
        self.self_cost = defaultdict(int)        # (ob, fn) -> Ir
        self.calls = defaultdict(int)            # ((ob, fn), (cob, cfn)) -> inclusive Ir
        self.call_count = defaultdict(int)       # same key -> number of calls
        self.totals = None


def _name(table, value):
    """Resolves callgrind name compression: '(12) name' defines, '(12)' refers."""
    m = _compressed.match(value)
    if not m:
        return value
    key, name = m.group(1), m.group(2)
    if name is not None:
        table[key] = name
        return name
    return table.get(key, "(%s)" % key)


def parse(path):
    prof = Profile()
    obs, fns, fls = {}, {}, {}
    ob = fn = None
    cob = cfn = None
    pending_call = None      # number of calls when the next cost line is a call's cost
    with open(path, "r", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                fields = line.split()
                if len(fields) < 2:
                    continue
                cost = int(fields[1])
                if pending_call is not None:
                    key = ((ob, fn), (cob if cob is not None else ob, cfn))
                    prof.calls[key] += cost
                    prof.call_count[key] += pending_call
                    pending_call = None
                    cob = cfn = None
                else:
                    prof.self_cost[(ob, fn)] += cost
                continue
            if "=" not in line:
                continue
            key, _, value = line.partition("=")
            if key == "ob":
                ob = _name(obs, value)
            elif key == "fn":
                fn = _name(fns, value)
                cob = cfn = None
            elif key == "cob":
                cob = _name(obs, value)
            elif key == "cfn":
                cfn = _name(fns, value)
            elif key in ("fl", "fi", "fe", "cfi", "cfl"):
                _name(fls, value)
            elif key == "calls":
                pending_call = int(value.split()[0])
            elif key in ("totals", "summary"):
                prof.totals = int(value.split()[0])
    return prof


def attribute(prof, obj_substring, chain=DEFAULT_CHAIN):
    """Rows (function, self, callees, calls made, {callee: Ir}) for the object's functions."""
    rows = {}
    for (ob, fn), cost in prof.self_cost.items():
        if ob and obj_substring in ob:
            rows.setdefault(fn, [0, 0, defaultdict(int)])[0] += cost
    for ((ob, fn), (cob, cfn)), cost in prof.calls.items():
        if not (ob and obj_substring in ob):
            continue
        row = rows.setdefault(fn, [0, 0, defaultdict(int)])
        if cob and obj_substring in cob:
            continue            # counted as the callee's own row
        if cfn in chain:
            continue            # would run without the extension too
        row[1] += cost
        row[2][cfn] += cost
    return rows


def subtract(rows, base_rows):
    """rows - base_rows, function by function (start-up cost removed)."""
    for name, (s, c, by) in base_rows.items():
        row = rows.setdefault(name, [0, 0, defaultdict(int)])
        row[0] -= s
        row[1] -= c
        for cfn, cost in by.items():
            row[2][cfn] -= cost
    return rows


def report(path, obj_substring, statements, start_path=None, chain=DEFAULT_CHAIN, top=25,
           out=sys.stdout):
    prof = parse(path)
    rows = attribute(prof, obj_substring, chain)
    if start_path:
        rows = subtract(rows, attribute(parse(start_path), obj_substring, chain))
    rows = {n: r for n, r in rows.items() if abs(r[0] + r[1]) >= statements / 20 or abs(r[0]) >= statements / 20}
    ordered = sorted(rows.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))
    w = max([len(n) for n, _ in ordered[:top]] + [20])
    out.write("%-*s %10s %10s %10s\n" % (w, "function (%s)" % obj_substring, "self", "callees", "total"))
    sum_self = sum_callees = 0
    for name, (s, c, _) in ordered:
        sum_self += s
        sum_callees += c
    for name, (s, c, _) in ordered[:top]:
        out.write("%-*s %10.1f %10.1f %10.1f\n" % (w, name, s / statements, c / statements,
                                                   (s + c) / statements))
    if len(ordered) > top:
        rest = ordered[top:]
        out.write("%-*s %10.1f %10.1f %10.1f\n" % (
            w, "(%d more)" % len(rest), sum(r[1][0] for r in rest) / statements,
            sum(r[1][1] for r in rest) / statements,
            sum(r[1][0] + r[1][1] for r in rest) / statements))
    out.write("%-*s %10.1f %10.1f %10.1f\n" % (w, "TOTAL", sum_self / statements,
                                               sum_callees / statements,
                                               (sum_self + sum_callees) / statements))
    # the outside functions the extension calls, summed over its functions
    callees = defaultdict(int)
    for _, (_, _, by) in rows.items():
        for cfn, cost in by.items():
            callees[cfn] += cost
    if callees:
        out.write("\noutside functions called by %s (inclusive, per statement):\n" % obj_substring)
        for cfn, cost in sorted(callees.items(), key=lambda kv: -kv[1])[:12]:
            if cost / statements >= 0.5:
                out.write("  %-40s %8.1f\n" % (cfn, cost / statements))
    return prof, (sum_self + sum_callees) / statements


def self_by_function(path, start_path=None):
    """Self cost per (object basename, function), minus a start-up profile's."""
    costs = defaultdict(int)
    for (ob, fn), cost in parse(path).self_cost.items():
        costs[(os.path.basename(ob or "?"), fn)] += cost
    if start_path:
        for (ob, fn), cost in parse(start_path).self_cost.items():
            costs[(os.path.basename(ob or "?"), fn)] -= cost
    return costs


def diff_report(with_n, with_0, without_n, without_0, statements, top=15, out=sys.stdout):
    """Functions whose own cost per statement changed between two configurations."""
    a = self_by_function(with_n, with_0)
    b = self_by_function(without_n, without_0)
    delta = {k: a.get(k, 0) - b.get(k, 0) for k in set(a) | set(b)}
    ordered = sorted(delta.items(), key=lambda kv: -abs(kv[1]))
    out.write("%-52s %10s\n" % ("function [object]", "delta/stmt"))
    shown = 0
    for (ob, fn), d in ordered[:top]:
        if abs(d) / statements < 0.5:
            break
        out.write("%-52s %10.1f\n" % ("%s [%s]" % (fn, ob), d / statements))
        shown += d
    total = sum(delta.values())
    out.write("%-52s %10.1f\n" % ("(all other functions)", (total - shown) / statements))
    out.write("%-52s %10.1f\n" % ("TOTAL", total / statements))


def line_costs(path, file_substring):
    """Self Ir per (source file, line) of the files whose name contains file_substring."""
    costs = defaultdict(int)
    fls = {}
    fl = cur = None
    pos = 0
    pending_call = False
    with open(path, "r", errors="replace") as f:
        for line in f:
            c = line[0] if line else ""
            if c.isdigit() or c in "+-*":
                fields = line.split()
                p = fields[0]
                if p == "*":
                    pass
                elif p[0] in "+-":
                    pos += int(p)
                else:
                    pos = int(p)
                if pending_call:
                    pending_call = False        # inclusive cost of a call: not this line's own
                elif cur is not None and len(fields) > 1 and file_substring in cur:
                    costs[(cur, pos)] += int(fields[1])
                continue
            key, _, value = line.rstrip("\n").partition("=")
            if key == "fl":
                fl = cur = _name(fls, value)
            elif key in ("fi", "fe"):
                cur = _name(fls, value)
            elif key == "fn":
                cur = fl
            elif key in ("cfi", "cfl"):
                _name(fls, value)
            elif key == "calls":
                pending_call = True
    return costs


def line_report(path, start_path, statements, file_substring, src_old="", src_new="", min_per_stmt=1.0):
    """Per-line self cost per statement (path minus start_path), with the source text."""
    a = line_costs(path, file_substring)
    for k, v in line_costs(start_path, file_substring).items():
        a[k] -= v
    by_file = defaultdict(list)
    for (fl, ln), cost in a.items():
        if abs(cost) / statements >= min_per_stmt:
            by_file[fl].append((ln, cost))
    out = []
    for fl in sorted(by_file, key=lambda f: -sum(c for _, c in by_file[f])):
        src = fl.replace(src_old, src_new, 1) if src_old else fl
        if not os.path.exists(src) and src_new and file_substring in fl:
            # a path relative to the tree (as the debug information may have it)
            src = os.path.join(src_new, fl[fl.find(file_substring) + len(file_substring):])
        try:
            with open(src, errors="replace") as f:
                text = f.read().split("\n")
        except OSError:
            text = []
        total = sum(c for _, c in by_file[fl])
        shown = fl[fl.find(file_substring):] if file_substring in fl else fl
        out.append("--- %s (%.1f per statement in these lines)" % (shown, total / statements))
        for ln, cost in sorted(by_file[fl]):
            out.append("%8.1f %5d  %s" % (cost / statements, ln,
                                          text[ln - 1].strip() if 0 < ln <= len(text) else ""))
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    chain = list(DEFAULT_CHAIN)
    if "--chain" in argv:
        i = argv.index("--chain")
        chain += argv[i + 1:]
        argv = argv[:i]
    report(argv[1], argv[2], int(argv[3]), argv[4] if len(argv) > 4 else None, chain)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
