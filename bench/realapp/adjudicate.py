"""
Turns the traces of drive.py into bench/realapp's results: the truth (N+1
patterns adjudicated from the application's own call stacks and result rows,
rules in README.md), django-debug-toolbar's SQL panel groups on the same
queries, and n1detect's rows matched against the truth: precision, recall by
N, parent accuracy, per page and in total, per configuration, and a list of
what was missed and why.  It reads traces only: no database, no server.

Usage: adjudicate.py LABEL=TRACE.json [LABEL=TRACE.json ...] > results.txt
       adjudicate.py --json LABEL=TRACE.json   (totals and truth per page, for
                                                test/t/150_realapp_hyperkitty.pl)
"""
import collections
import json
import linecache
import re
import sys

from debug_toolbar.panels.sql.panel import (
    _duplicate_query_key, _process_query_groups, _similar_query_key)
from debug_toolbar.panels.sql.utils import contrasting_color_generator

PARENT_COVERAGE = 0.5   # share of a loop's calls whose values a parent supplied


# ---------------------------------------------------------------- normalizing
_STR = re.compile(r"[EeBbXx]?'(?:[^']|'')*'")
_NUM = re.compile(r"(?<![\w.\"$?])-?\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")


def norm(sql):
    """SQL with constants, placeholders and lists of them as '?', one space."""
    s = _STR.sub("?", sql)
    s = re.sub(r"\$\d+|%s", "?", s)
    s = _NUM.sub("?", s)
    s = re.sub(r"\b(?:true|false)\b", "?", s, flags=re.I)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\?(?:\s*,\s*\?)+", "?", s)
    s = re.sub(r"\(\s*\?\s*\)", "(?)", s)
    return s


def same_text(n1_text, truth_norm):
    """n1detect's text of a query (cut at 1023 bytes) is the truth's query:
    n1detect maps every query id of one normalized text to the first one it
    saw, so a query can come back under the id of its twin."""
    if not n1_text:
        return False
    n = norm(n1_text)
    if len(n1_text.encode()) < 1000:
        return n == truth_norm
    return truth_norm.startswith(n[:-40])


def short_sql(s, n=110):
    s = re.sub(r'"[a-z_]+"\."([a-z_]+)"', r"\1", s)     # "table"."col" -> col
    s = re.sub(r"SELECT (?:DISTINCT )?(.{0,40}?)[^()]*? FROM", lambda m: "SELECT %s… FROM" % m.group(1).split(",")[0], s, count=1)
    return s if len(s) <= n else s[:n - 1] + "…"


def call_site(stack):
    """Innermost HyperKitty frame or template node of a query's stack."""
    for fr in reversed(stack):
        if fr.startswith("hyperkitty/") or fr.startswith("tpl:"):
            return fr
    return stack[-1] if stack else "?"


def key_like(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str) and 3 < len(v) <= 255:
        return v
    return None


def flat_params(p):
    out = []
    for v in p or []:
        if isinstance(v, list):
            out.extend(flat_params(v))
        else:
            out.append(v)
    return out


# ---------------------------------------------------------------- the truth
class Pattern:
    pass


def adjudicate_page(page, qids):
    qs = [q for q in page["queries"] if q.get("ok")]
    for i, q in enumerate(qs):
        q["i"] = i
        q["norm"] = norm(q["sql"])
        q["site"] = call_site(q["stack"])
        q["qid"] = qids.get(q.get("sent") or "")
        vals = set()
        for col in (q.get("result") or {}).values():
            vals.update(col)
        q["vals"] = vals
    groups = collections.OrderedDict()
    for q in qs:
        if q["many"]:
            continue
        groups.setdefault((q["norm"], q["site"]), []).append(q)
    patterns = []
    for (nsql, site), calls in groups.items():
        if len(calls) < 2:
            continue
        stacks = collections.Counter(tuple(c["stack"]) for c in calls)
        if stacks.most_common(1)[0][1] < 2:
            continue            # same site but never twice by one path: no loop
        p = Pattern()
        p.norm, p.site, p.calls = nsql, site, calls
        p.n = len(calls)
        p.raw = calls[0]["sql"]
        p.sample = calls[0].get("sent") or calls[0]["sql"]
        p.qids = {c["qid"] for c in calls if c["qid"]}
        params = [flat_params(c["params"]) for c in calls]
        p.distinct = len({json.dumps(x) for x in params})
        p.parent = None
        p.parents_alt = []
        p.coverage = 0.0
        if p.distinct == 1:
            p.kind = "duplicate"
        else:
            # the values that vary from call to call
            if len({len(x) for x in params}) == 1:
                pos = [j for j in range(len(params[0]))
                       if len({json.dumps(x[j]) for x in params}) > 1]
                varying = [{key_like(x[j]) for j in pos} - {None} for x in params]
            else:
                varying = [{key_like(v) for v in x} - {None} for x in params]
            p.varying = varying
            p.kind = find_parent(p, qs, varying)
        patterns.append(p)
    return qs, patterns


def common_depth(a, b):
    d = 0
    for x, y in zip(a, b):
        if x != y:
            break
        d += 1
    return d


_FOR_LINE = re.compile(r"\bfor\b.+\bin\b")
_TPL_FOR = re.compile(r"^tpl:\S+ for \w")


def iterates_here(frame):
    """A stack entry at which a collection is iterated: a {% for %} node, or a
    Python line with a for loop or a comprehension."""
    if frame.startswith("tpl:"):
        return bool(_TPL_FOR.match(frame))
    path, _, rest = frame.partition(":")
    line = rest.split(" ", 1)[0]
    if not line.isdigit():
        return False
    src = linecache.getline("/usr/lib/python3/dist-packages/" + path, int(line))
    return bool(_FOR_LINE.search(src))


def loop_site(cand_stack, child_stack):
    """The candidate was evaluated by the loop that runs the child: the two
    stacks part right at a frame that iterates (a {% for %} node, or a Python
    line with a for loop or a comprehension), and the candidate went no
    deeper than HyperKitty's model code (a property or manager method that
    the for evaluates).  A sibling, run inside the loop's body, goes deeper:
    through another template node, a serializer field, a line of the body."""
    d = common_depth(cand_stack, child_stack)
    rest = cand_stack[d:]

    def shallow(frames):
        return all(f.startswith("hyperkitty/models/") for f in frames)

    if d and iterates_here(cand_stack[d - 1]) and shallow(rest):
        return True
    if rest and d < len(child_stack):
        a, b = rest[0], child_stack[d]
        same_func = (not a.startswith("tpl:") and a.split(":")[0] == b.split(":")[0]
                     and a.split(" ", 1)[-1] == b.split(" ", 1)[-1])
        if same_func and iterates_here(a) and shallow(rest[1:]):
            return True
    return False


def find_parent(p, qs, varying):
    """n_plus_one with p.parent set, or loop when no earlier result supplied
    the varying values (rules in README.md)."""
    first, last = p.calls[0]["i"], p.calls[-1]["i"]
    with_vals = [(c, v) for c, v in zip(p.calls, varying) if v]
    if not with_vals:
        return "loop"
    credit = collections.defaultdict(set)     # parent norm -> calls supplied
    last_before = {}                           # parent norm -> last query before 1st call
    inside = set()                             # norms run between first and last call
    for q in qs:
        if q["norm"] == p.norm:
            continue
        if q["i"] < first:
            last_before[q["norm"]] = q
        elif q["i"] < last:
            inside.add(q["norm"])
    for k, (c, v) in enumerate(with_vals):
        for q in qs:
            if q["i"] >= c["i"]:
                break
            if q["norm"] != p.norm and q["vals"] and (v & q["vals"]):
                credit[q["norm"]].add(k)
    cands = []
    for pn, ks in credit.items():
        cov = len(ks) / len(with_vals)
        if cov >= PARENT_COVERAGE and pn in last_before:
            lb = last_before[pn]
            at_loop = loop_site(lb["stack"], p.calls[0]["stack"])
            sibling = pn in inside and not at_loop
            cands.append((at_loop, not sibling, cov, lb["i"], pn, lb))
    if not cands:
        return "loop"
    cands.sort(reverse=True, key=lambda t: t[:4])
    p.coverage = cands[0][2]
    p.parent = cands[0][5]
    p.parent_norm = cands[0][4]
    p.parent_how = "loop site" if cands[0][0] else ("data" if cands[0][1] else "data, sibling")
    p.parent_qids = {q["qid"] for q in qs if q["norm"] == p.parent_norm and q["qid"]}
    p.parents_alt = [(c[4], {q["qid"] for q in qs if q["norm"] == c[4] and q["qid"]})
                     for c in cands[1:]]
    return "n_plus_one"


def gaps(p, qs, max_gap_ms):
    """Idle gaps the server saw (client-side time between two queries) inside
    the loop, and between the parent and the loop's first call."""
    first, last = p.calls[0]["i"], p.calls[-1]["i"]
    inside = max([(qs[j + 1]["t0"] - qs[j]["t1"]) * 1000 for j in range(first, last)] or [0])
    before = 0.0
    if p.parent is not None:
        j0 = p.parent["i"]
        before = max([(qs[j + 1]["t0"] - qs[j]["t1"]) * 1000 for j in range(j0, first)] or [0])
    return inside, before


# ---------------------------------------------------------------- the toolbar
def toolbar(qs):
    """django-debug-toolbar's SQL panel groups, computed by its own code."""
    queries = [{"alias": "default", "raw_sql": q["sql"], "raw_params": q["params"]}
               for q in qs if not q["many"]]
    similar = collections.defaultdict(list)
    dups = collections.defaultdict(list)
    for q in queries:
        similar[("default", _similar_query_key(q))].append(q)
        dups[("default", _duplicate_query_key(q))].append(q)
    dbs = {"default": {}}
    colors = contrasting_color_generator()
    _process_query_groups(similar, dbs, colors, "similar")
    _process_query_groups(dups, dbs, colors, "duplicate")
    sim_groups = []   # raw sql of similar groups with >= 2 distinct parameter sets
    for (_, raw), g in similar.items():
        if g[0].get("similar_count", 0) >= 2:
            distinct = len({_duplicate_query_key(q) for q in g})
            sim_groups.append((norm(raw), len(g), distinct))
    dup_groups = [(norm(k[1][0]), len(g)) for k, g in dups.items()
                  if g[0].get("duplicate_count", 0) >= 2]
    return sim_groups, dup_groups


# ---------------------------------------------------------------- scoring
class Tally:
    def __init__(self):
        self.c = collections.Counter()

    def __getitem__(self, k):
        return self.c[k]

    def add(self, other):
        gap = max(self.c["max_gap_ms"], other.c["max_gap_ms"])
        self.c.update(other.c)
        self.c["max_gap_ms"] = gap


def pct(a, b):
    return "  -  " if b == 0 else "%4.0f%%" % (100.0 * a / b)


def score_run(trace):
    qids = trace.get("queryids", {})
    settings = trace.get("app_settings", {})
    max_gap_ms = parse_ms(settings.get("max_gap", "100ms"))
    min_calls = int(settings.get("min_calls", 5))
    total = Tally()
    misses, fps, wrong_parents, lines = [], [], [], []
    truth_sig = []
    for page in trace["pages"]:
        qs, pats = adjudicate_page(page, qids)
        t = Tally()
        nplus = [p for p in pats if p.kind == "n_plus_one"]
        loops = [p for p in pats if p.kind == "loop"]
        dupl = [p for p in pats if p.kind == "duplicate"]
        for p in pats:
            truth_sig.append((page["name"], p.kind, p.norm, p.site, p.n,
                              getattr(p, "parent_norm", None)))
        rows = page["offenders"]
        for r in rows:
            r["norm"] = norm(r["query"] or "")
            r["pnorm"] = norm(r["parent_query"] or "") if r.get("parent_query") else None

        def matches(r, p):
            if p.qids and r["queryid"] is not None and str(r["queryid"]) in p.qids:
                return True
            return same_text(r["query"], p.norm)

        t.c["pages"] = 1
        t.c["bursts_dropped"] = int(page["info"].get("bursts_dropped") or 0)
        t.c["queries_evicted"] = int(page["info"].get("queries_evicted") or 0)
        t.c["queries"] = len(qs)
        idle = max([(qs[j + 1]["t0"] - qs[j]["t1"]) * 1000 for j in range(len(qs) - 1)] or [0])
        t.c["pages_gap100"] = 1 if idle > 100 else 0
        t.c["max_gap_ms"] = int(idle)
        t.c["truth"] = len(nplus)
        t.c["truth5"] = sum(1 for p in nplus if p.n >= 5)
        t.c["truth24"] = sum(1 for p in nplus if p.n < 5)
        t.c["tloops"] = len(loops)
        t.c["tdups"] = len(dupl)
        t.c["rows_np"] = sum(1 for r in rows if r["kind"] == "n_plus_one")
        t.c["rows_loop"] = sum(1 for r in rows if r["kind"] == "loop")
        t.c["rows_dup"] = sum(1 for r in rows if r["kind"] == "duplicate")
        # precision over n_plus_one and loop rows
        for r in rows:
            r["verdict"] = "FP"
            if r["kind"] == "duplicate":
                ok = any(matches(r, p) for p in pats)
                t.c["dup_tp" if ok else "dup_fp"] += 1
                r["verdict"] = "ok" if ok else "FP"
                continue
            hit = [p for p in nplus if matches(r, p)]
            if hit:
                t.c["tp_" + r["kind"]] += 1
                if r["kind"] == "n_plus_one":
                    p = hit[0]
                    pq = str(r["parent_queryid"]) if r["parent_queryid"] is not None else None
                    if pq in p.parent_qids or same_text(r.get("parent_query"), p.parent_norm):
                        t.c["parent_ok"] += 1
                        r["verdict"] = "TP, parent ok"
                    else:
                        alt = any(pq in a[1] for a in p.parents_alt)
                        t.c["parent_alt" if alt else "parent_bad"] += 1
                        wrong_parents.append((page["name"], p, r, alt))
                        r["verdict"] = "TP, parent " + ("alt" if alt else "wrong")
                else:
                    r["verdict"] = "TP"
                continue
            lhit = [p for p in loops if matches(r, p)]
            if lhit and r["kind"] == "loop":
                t.c["loop_ok"] += 1            # a non-data loop reported as loop
                r["verdict"] = "ok (loop without data parent)"
                continue
            t.c["fp_" + r["kind"]] += 1
            fps.append((page["name"], r, lhit or [p for p in dupl if matches(r, p)], qs))
        # recall
        for p in nplus:
            band = "5" if p.n >= 5 else "24"
            kinds = {r["kind"] for r in rows if matches(r, p)}
            if kinds & {"n_plus_one", "loop"}:
                t.c["found" + band] += 1
                if "n_plus_one" in kinds:
                    t.c["found_np" + band] += 1
            else:
                misses.append((page["name"], p, why_missed(p, qs, rows, kinds, min_calls, max_gap_ms, page)))
        # toolbar
        sim, dg = toolbar(qs)
        t.c["tb_similar"] = len(sim)
        t.c["tb_dup"] = len(dg)
        sim_norms = {s[0] for s in sim}
        t.c["tb_tp"] = sum(1 for s in sim if any(s[0] == p.norm for p in nplus))
        for p in nplus:
            if p.norm in sim_norms:
                t.c["tb_found" + ("5" if p.n >= 5 else "24")] += 1
        total.add(t)
        lines.append((page, t, pats, rows))
    return total, lines, misses, fps, wrong_parents, truth_sig, min_calls, max_gap_ms


def why_missed(p, qs, rows, kinds, min_calls, max_gap_ms, page):
    why = []
    if kinds:
        why.append("reported as %s" % "/".join(sorted(kinds)))
    if p.n < min_calls:
        why.append("N=%d below min_calls=%d" % (p.n, min_calls))
    if len(p.qids) > 1:
        why.append("%d query ids" % len(p.qids))
    inside, before = gaps(p, qs, max_gap_ms)
    if inside > max_gap_ms:
        why.append("pause of %.0f ms inside the loop" % inside)
    if before > max_gap_ms:
        why.append("pause of %.0f ms between parent and loop" % before)
    info = page["info"]
    if int(info.get("bursts_dropped") or 0) or int(info.get("queries_evicted") or 0):
        why.append("n1_info: %s bursts dropped, %s queries evicted on this page"
                   % (info.get("bursts_dropped"), info.get("queries_evicted")))
    if not why:
        why.append("not reported (%d rows on the page, bursts_total %s)"
                   % (len(rows), info.get("bursts_total")))
    return "; ".join(why)


def parse_ms(s):
    m = re.match(r"(\d+)\s*(ms|s|min)?", str(s))
    if not m:
        return 100.0
    v = float(m.group(1))
    return v * {"ms": 1, "s": 1000, "min": 60000, None: 1}[m.group(2)]


# ---------------------------------------------------------------- report
def summary_json(trace):
    total, lines = score_run(trace)[:2]
    pages = []
    for page, pt, pats, rows in lines:
        pages.append({
            "name": page["name"], "status": page["status"],
            "truth": [{"kind": p.kind, "n": p.n, "query": p.norm, "site": p.site,
                       "parent": getattr(p, "parent_norm", None)} for p in pats],
            "rows": [{"kind": r["kind"], "query": r["norm"], "parent": r.get("pnorm"),
                      "max_calls": r["max_calls"], "verdict": r.get("verdict")} for r in rows]})
    return {"total": dict(total.c), "pages": pages}


def main():
    if sys.argv[1:2] == ["--json"]:
        path = sys.argv[2].split("=", 1)[-1]
        with open(path) as f:
            print(json.dumps(summary_json(json.load(f)), indent=1))
        return
    runs = []
    for arg in sys.argv[1:]:
        label, path = arg.split("=", 1)
        with open(path) as f:
            runs.append((label, json.load(f)))
    results = [(label, trace) + score_run(trace) for label, trace in runs]

    first = results[0]
    total0 = first[2]
    print("Truth (adjudicated from the application's stacks and result rows, first run):")
    print("  %d pages, %d queries; N+1 patterns: %d (N >= 5: %d, N 2-4: %d); "
          "loops without a data parent: %d; duplicate groups: %d"
          % (total0["pages"], total0["queries"], total0["truth"], total0["truth5"],
             total0["truth24"], total0["tloops"], total0["tdups"]))
    print("  idle time between two queries of one page (client side): over 100 ms on %d pages, "
          "longest %d ms" % (total0["pages_gap100"], total0["max_gap_ms"]))
    tb_prec_d = total0["tb_similar"]
    print("  django-debug-toolbar (SQL panel 'similar' groups, same queries): %d groups, "
          "precision %s, recall %s (N >= 5: %s, N 2-4: %s), no parents; 'duplicated' groups: %d"
          % (tb_prec_d, pct(total0["tb_tp"], tb_prec_d).strip(),
             pct(total0["tb_found5"] + total0["tb_found24"], total0["truth"]).strip(),
             pct(total0["tb_found5"], total0["truth5"]).strip(),
             pct(total0["tb_found24"], total0["truth24"]).strip(), total0["tb_dup"]))
    # determinism across runs: same truth?
    for r in results[1:]:
        a = collections.Counter(first[7])
        b = collections.Counter(r[7])
        if a != b:
            print("  truth of run %s differs from run %s in %d patterns"
                  % (r[0], first[0], sum(((a - b) + (b - a)).values())))
    # determinism: runs with the same options, same n1detect rows per page?
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            if a[1].get("options") != b[1].get("options"):
                continue
            differ = []
            for pa, pb in zip(a[1]["pages"], b[1]["pages"]):
                ka = sorted((r["kind"], r["queryid"], r["parent_queryid"], r["max_calls"]) for r in pa["offenders"])
                kb = sorted((r["kind"], r["queryid"], r["parent_queryid"], r["max_calls"]) for r in pb["offenders"])
                if ka != kb:
                    differ.append(pa["name"])
            print("  runs %s and %s (same settings): n1detect rows differ on %d of %d pages%s"
                  % (a[0], b[0], len(differ), len(a[1]["pages"]),
                     (": " + ", ".join(differ)) if differ else ""))
    print()
    print("Summary (rows of n1_offenders per page; precision over n_plus_one+loop rows,"
          " recall = truth N+1 patterns reported as n_plus_one or loop):")
    hdr = ("%-26s %5s %5s %5s | %6s %6s %6s %6s | %6s %6s | %9s %5s | %4s %4s"
           % ("configuration", "np", "loop", "dup", "prec", "recall", "N>=5", "N2-4",
              "np>=5", "np2-4", "parent ok", "alt", "FP", "dFP"))
    print(hdr)
    print("-" * len(hdr))
    for label, trace, t, *_ in results:
        tp = t["tp_n_plus_one"] + t["tp_loop"]
        fp = t["fp_n_plus_one"] + t["fp_loop"]
        print("%-26s %5d %5d %5d | %6s %6s %6s %6s | %6s %6s | %4d/%-4d %5d | %4d %4d"
              % (label, t["rows_np"], t["rows_loop"], t["rows_dup"],
                 pct(tp, tp + fp), pct(t["found5"] + t["found24"], t["truth"]),
                 pct(t["found5"], t["truth5"]), pct(t["found24"], t["truth24"]),
                 pct(t["found_np5"], t["truth5"]), pct(t["found_np24"], t["truth24"]),
                 t["parent_ok"], t["tp_n_plus_one"], t["parent_alt"], fp, t["dup_fp"]))
    print("  np/loop/dup: rows of each kind; prec: (n_plus_one+loop rows matching a truth N+1)"
          " / (all n_plus_one+loop rows except loop rows that match a loop without a data parent);")
    print("  np>=5, np2-4: recall counting n_plus_one rows only; parent ok: n_plus_one rows naming"
          " the truth parent / n_plus_one rows matching a truth N+1;")
    print("  alt: parent is another query whose rows also held the values; FP: false"
          " n_plus_one/loop rows; dFP: duplicate rows with no repeated query behind them.")

    for label, trace, t, lines, misses, fps, wrong, _sig, min_calls, max_gap in results:
        print()
        print("=" * 100)
        print("Configuration %s (min_calls=%d, max_gap=%s, pause between pages %.0f ms, options %r)"
              % (label, min_calls, trace["app_settings"].get("max_gap"), trace["pause_ms"],
                 trace.get("options")))
        print("n1_info over the pages: %d bursts dropped, %d queries evicted from a unit's table"
              % (t["bursts_dropped"], t["queries_evicted"]))
        print("%-3s %-38s %5s %5s | %3s %3s %3s %3s | %3s %4s %3s | %3s %3s %4s | %3s %3s"
              % ("#", "page", "qrys", "gap", "T>5", "T<5", "Tlp", "Tdp", "np", "loop", "dup",
                 "TP", "FP", "par", "tbS", "tbD"))
        for page, pt, pats, rows in lines:
            tp = pt["tp_n_plus_one"] + pt["tp_loop"]
            fp = pt["fp_n_plus_one"] + pt["fp_loop"]
            print("%-3d %-38s %5d %5d | %3d %3d %3d %3d | %3d %4d %3d | %3d %3d %2d/%-2d| %3d %3d"
                  % (page["n"], page["name"][:38], pt["queries"], pt["max_gap_ms"], pt["truth5"], pt["truth24"],
                     pt["tloops"], pt["tdups"], pt["rows_np"], pt["rows_loop"], pt["rows_dup"],
                     tp, fp, pt["parent_ok"], pt["tp_n_plus_one"], pt["tb_similar"],
                     pt["tb_dup"]))
        print("  gap: longest idle time between two queries, ms (client side);"
              " T>5/T<5: truth N+1 patterns with N >= 5 / N 2-4; Tlp: loops without a data parent;"
              " Tdp: duplicate groups; np/loop/dup: n1detect rows; TP/FP: n_plus_one+loop rows;"
              " par: right parents / n_plus_one TPs; tbS/tbD: toolbar similar/duplicated groups")
        if label == results[0][0]:
            print()
            print("Truth patterns of run %s (kind, N, distinct params, call site, query; parent):" % label)
            for page, pt, pats, rows in lines:
                for p in pats:
                    print("  [%d %s] %-10s N=%-3d d=%-3d %s" % (page["n"], page["name"][:24], p.kind, p.n,
                                                             p.distinct, p.site[:70]))
                    print("        %s" % short_sql(p.norm))
                    if p.kind == "n_plus_one":
                        print("        parent (%s, values of %.0f%% of calls): %s"
                              % (p.parent_how, 100 * p.coverage, short_sql(p.parent_norm)))
        print()
        print("n1detect rows of run %s (page, kind, max calls, query <- parent: verdict):" % label)
        for page, pt, pats, rows in lines:
            for r in rows:
                print("  [%d] %-10s %4s  %s <- %s: %s" % (
                    page["n"], r["kind"], r["max_calls"], short_sql(r["norm"], 60),
                    short_sql(r["pnorm"], 50) if r.get("pnorm") else "-", r.get("verdict")))
        print()
        print("Missed truth N+1 patterns (%d):" % len(misses))
        for name, p, why in misses:
            print("  %-30s N=%-3d %s" % (name[:30], p.n, why))
            print("        %s   @ %s" % (short_sql(p.norm, 80), p.site[:60]))
        print("False n_plus_one/loop rows (%d):" % len(fps))
        for name, r, truth, qs in fps:
            what = ("truth: %s, N=%d" % (truth[0].kind, truth[0].n)) if truth else \
                "truth: no repeated call site (%d calls of this text)" % sum(
                    1 for q in qs if (q["qid"] == str(r["queryid"])) or q["norm"] == r["norm"])
            print("  %-30s %-10s calls=%-3s %s" % (name[:30], r["kind"], r["max_calls"], what))
            print("        %s" % short_sql(r["norm"]))
            if r.get("pnorm"):
                print("        parent: %s" % short_sql(r["pnorm"]))
        print("n_plus_one rows with another parent than the truth (%d):" % len(wrong))
        for name, p, r, alt in wrong:
            print("  %-30s N=%-3d %s%s" % (name[:30], p.n, short_sql(p.norm, 70),
                                         " (alt: also holds the values)" if alt else ""))
            print("        truth : %s" % short_sql(p.parent_norm))
            print("        n1    : %s" % short_sql(r["pnorm"] or "(none)"))


if __name__ == "__main__":
    main()
