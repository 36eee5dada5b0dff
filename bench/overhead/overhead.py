#!/usr/bin/python3
"""Driver of the n1detect overhead benchmarks (started by bench/overhead/run).

Runs as the user that owns the servers (postgres when run was started as
root), in a scratch directory prepared by run: WORK/pg holds a private copy
of the PostgreSQL installation (with the n1detect.so to measure), clusters go
to WORK/clusters, result files to WORK/results.  See README.md for the method.
"""
import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cgattr  # noqa: E402

CONFIGS = [
    # name, label, shared_preload_libraries, extensions to create
    ("A", "baseline (no library)", "", []),
    ("B", "n1detect", "n1detect", ["n1detect"]),
    ("C", "pg_stat_statements", "pg_stat_statements", ["pg_stat_statements"]),
    ("D", "pg_stat_statements + n1detect", "pg_stat_statements,n1detect",
     ["pg_stat_statements", "n1detect"]),
    # a second baseline cluster: what two identical servers differ by on this machine
    ("E", "control: baseline again", "", []),
]
LABEL = {c[0]: c[1] for c in CONFIGS}
MODES = ["simple", "prepared"]

# Settings shared by every benchmark cluster (besides port and preloading).
BASE_CONF = """
listen_addresses = ''
unix_socket_directories = '{sock}'
max_connections = 100
shared_buffers = {shared_buffers}
compute_query_id = on
jit = off
autovacuum = off
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
checkpoint_timeout = 1h
log_min_messages = warning
log_checkpoints = off
n1detect.save = off
pg_stat_statements.save = off
"""

CLK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        self.bindir = os.path.join(self.work, "pg/usr/lib/postgresql/15/bin")
        self.sock = os.path.join(self.work, "sock")
        self.results = os.path.join(self.work, "results")
        for d in (self.sock, self.results, os.path.join(self.work, "clusters"),
                  os.path.join(self.work, "logs")):
            os.makedirs(d, exist_ok=True)
        self.meta = open(args.meta).read() if args.meta and os.path.exists(args.meta) else ""
        self.clusters = {}

    def bin(self, name):
        return os.path.join(self.bindir, name)

    def run(self, cmd, **kw):
        kw.setdefault("check", True)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        check = kw.pop("check")
        r = subprocess.run(cmd, **kw)
        if check and r.returncode != 0:
            raise RuntimeError("command failed (exit %d): %s\n%s%s" % (
                r.returncode, " ".join(cmd), r.stdout or "", r.stderr or ""))
        return r

    def header(self, title, extra=""):
        a = self.args
        h = "%s\n%s\n%s" % (title, "=" * len(title), self.meta)
        h += ("parameters:  scale %d, %d clients, pgbench -j %d, %d s per run, %d rounds "
              "(slow path %d)%s, %d s warm-up, %d callgrind statements;\n"
              "             a round is run again (up to %d times) when other processes took more\n"
              "             than %.0f%% of the CPUs during it\n"
              % (a.scale, a.clients, a.jobs, a.duration, a.rounds, a.slow_rounds,
                 "" if a.control else ", no control cluster E", a.warmup,
                 a.statements, a.retries, a.noise_threshold))
        return h + extra + "\n"

    def write(self, name, text):
        path = os.path.join(self.results, name)
        with open(path, "w") as f:
            f.write(text)
        log("wrote results/%s" % name)
        sys.stderr.write(text + "\n")


class Cluster:
    def __init__(self, bench, name, port, preload="", conf=None):
        self.b = bench
        self.name = name
        self.port = port
        self.preload = preload
        self.dir = os.path.join(bench.work, "clusters", name)
        self.logfile = os.path.join(bench.work, "logs", name + ".log")
        self.conf = conf
        self.running = False

    def initdb(self):
        self.b.run([self.b.bin("initdb"), "-D", self.dir, "-A", "trust", "-E", "UTF8",
                    "--no-locale", "-N"])
        if self.conf is not None:
            with open(os.path.join(self.dir, "postgresql.conf"), "a") as f:
                f.write(self.conf)

    def start(self, extra=()):
        opts = ["-p", str(self.port)]
        if self.preload:
            opts += ["-c", "shared_preload_libraries=" + self.preload]
        opts += list(extra)
        self.b.run([self.b.bin("pg_ctl"), "-D", self.dir, "-l", self.logfile, "-w", "-t", "300",
                    "-o", " ".join(opts), "start"])
        self.running = True

    def stop(self, mode="fast"):
        if self.running:
            self.b.run([self.b.bin("pg_ctl"), "-D", self.dir, "-m", mode, "-w", "-t", "300", "stop"])
            self.running = False

    def pid(self):
        with open(os.path.join(self.dir, "postmaster.pid")) as f:
            return int(f.readline())

    def conn(self):
        return ["-h", self.b.sock, "-p", str(self.port)]

    def psql(self, sql, db="postgres"):
        r = self.b.run([self.b.bin("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                        "-F", "|"] + self.conn() + ["-d", db, "-c", sql])
        return r.stdout.strip()

    def pgbench(self, args, duration):
        cmd = [self.b.bin("pgbench")] + self.conn() + ["-n", "-T", str(duration)] + args + ["postgres"]
        r = self.b.run(cmd, check=False)
        m = re.search(r"^tps = ([0-9.]+) \(without initial connection time\)", r.stdout, re.M)
        if r.returncode != 0 or not m:
            raise RuntimeError("pgbench failed on %s: %s\n%s" % (self.name, " ".join(cmd),
                                                                  r.stdout + r.stderr))
        return float(m.group(1)), r.stdout


# ---------- noise: CPU used by processes that are not this benchmark's ----------

def _proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    # rest[1] = ppid, rest[11..14] = utime stime cutime cstime
    return int(rest[1]), int(rest[11]), int(rest[12]), int(rest[13]), int(rest[14])


class CpuMeter:
    """Busy CPU of the machine minus that of this benchmark's processes.

    Ours: this driver's children (pgbench, psql; reaped ones through
    os.times), the postmasters of our clusters and their children (backends;
    exited ones through the postmaster's cutime).  The rest, 'foreign', is
    what other work on the machine took during a measurement."""

    def __init__(self, postmaster_pids):
        self.pm = set(postmaster_pids)
        self.start = self.snapshot()

    def snapshot(self):
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        total = sum(fields[:8])
        idle = fields[3] + fields[4]
        steal = fields[7] if len(fields) > 7 else 0
        ours = 0
        me = os.getpid()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            st = _proc_stat(pid)
            if st is None:
                continue
            ppid, ut, stt, cut, cst = st
            if pid in self.pm:
                ours += ut + stt + cut + cst
            elif ppid in self.pm or ppid == me:
                ours += ut + stt
        t = os.times()
        ours += int(round((t.children_user + t.children_system) * CLK))
        return time.monotonic(), total - idle, steal, ours

    def result(self):
        """(foreign CPU %, steal %) of the machine's capacity since start."""
        end = self.snapshot()
        wall = end[0] - self.start[0]
        cap = wall * CLK * NCPU
        busy = end[1] - self.start[1]
        ours = end[3] - self.start[3]
        foreign = max(0.0, (busy - ours) * 100.0 / cap) if cap > 0 else 0.0
        steal = (end[2] - self.start[2]) * 100.0 / cap if cap > 0 else 0.0
        return foreign, steal


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


# ---------- pgbench: four configurations in alternation ----------

def ensure_clusters(b, names):
    """Creates (once) and starts the pgbench clusters named, with data."""
    a = b.args
    conf = BASE_CONF.format(sock=b.sock, shared_buffers=a.shared_buffers)
    missing = [n for n in names if n not in b.clusters]
    if not missing:
        return
    template = os.path.join(b.work, "clusters", "template")
    if not os.path.exists(template):
        log("initializing the pgbench data (scale %d)" % a.scale)
        t = Cluster(b, "template", a.port_base + 9, "", conf)
        t.initdb()
        t.start()
        b.run([b.bin("pgbench")] + t.conn() + ["-i", "-q", "-s", str(a.scale), "postgres"])
        t.psql("VACUUM ANALYZE")
        t.psql("CHECKPOINT")
        t.stop()
    for i, (name, label, preload, exts) in enumerate(CONFIGS):
        if name not in missing:
            continue
        c = Cluster(b, name, a.port_base + i, preload)
        shutil.copytree(template, c.dir, symlinks=True)
        os.chmod(c.dir, 0o700)
        c.start()
        for e in exts:
            c.psql("CREATE EXTENSION %s" % e)
        b.clusters[name] = c
    log("clusters running: " + ", ".join("%s (port %d, preload '%s')" % (n, c.port, c.preload)
                                         for n, c in sorted(b.clusters.items())))


def pgbench_args(b, mode):
    a = b.args
    return ["-S", "-M", mode, "-c", str(a.clients), "-j", str(a.jobs)]


def measure(b, cluster, args, duration, side=None):
    meter = CpuMeter([c.pid() for c in b.clusters.values()])
    tps, _ = cluster.pgbench(args, duration)
    time.sleep(0.3)  # let the postmaster reap the backends (their CPU time)
    foreign, steal = meter.result()
    return tps, foreign, steal


def wait_quiet(b):
    """Waits until other processes leave the CPUs alone (foreign CPU below the
    threshold over a 2-second probe), within the run's waiting budget."""
    a = b.args
    waited = 0.0
    while True:
        meter = CpuMeter([c.pid() for c in b.clusters.values()])
        time.sleep(2)
        foreign, _ = meter.result()
        if foreign <= a.noise_threshold:
            return
        if b.waited >= a.max_wait:
            if not b.wait_exhausted:
                log("waiting budget (%d s) used up: measuring on a busy machine" % a.max_wait)
                b.wait_exhausted = True
            return
        if waited == 0:
            log("machine busy (%.0f%% of the CPUs taken by other processes): waiting" % foreign)
        time.sleep(5)
        waited += 7
        b.waited += 7


def alternate(b, what, names, rounds, one):
    """Rounds of one run per configuration, in alternation (A B C D A B C D ...),
    per pgbench mode.  A round during which other processes took more than
    --noise-threshold % of the CPUs is run again (up to --retries times)."""
    a = b.args
    runs, extras = [], []
    for r in range(1, rounds + 1):
        for mode in MODES:
            for attempt in range(a.retries + 1):
                wait_quiet(b)
                got = [(name,) + one(name, mode) for name in names]
                worst = max(g[2] for g in got)
                line = "  ".join("%s %.0f" % (g[0], g[1]) for g in got)
                if worst > a.noise_threshold and attempt < a.retries:
                    b.discarded.append("%s %d %s: %s (foreign CPU up to %.0f%%)" % (what, r, mode, line, worst))
                    log("%s %d/%d %-8s %s: disturbed (foreign CPU up to %.0f%%), again"
                        % (what, r, rounds, mode, line, worst))
                    continue
                break
            for name, tps, foreign, steal, extra in got:
                runs.append((r, mode, name, tps, foreign, steal))
                if extra is not None:
                    extras.append(extra)
            log("%s %d/%d %-8s %s   (load %s)" % (what, r, rounds, mode, line, loadavg()))
    return runs, extras


def noise_note(b):
    lines = []
    if b.discarded:
        lines.append("Rounds run again because other processes took more than %.0f%% of the CPUs"
                     % b.args.noise_threshold)
        lines.append("(not counted above):")
        lines.extend("  " + d for d in b.discarded)
    lines.append("Waited %d s for the machine to be quiet before these rounds%s." % (
        b.waited - b.phase_wait_start, " (budget used up: later runs measured on a busy machine)" if b.wait_exhausted else ""))
    return "\n".join(lines) + "\n"


def summarize(values):
    return statistics.median(values), min(values), max(values)


def pct(x):
    return "%+.2f%%" % x


def phase_pgbench(b):
    a = b.args
    b.phase_wait_start = b.waited
    names = [c[0] for c in CONFIGS if c[0] != "E" or a.control]
    ensure_clusters(b, names)
    log("warm-up: %d s per configuration and mode" % a.warmup)
    for mode in MODES:
        for name in names:
            b.clusters[name].pgbench(pgbench_args(b, mode), a.warmup)
    def one(name, mode):
        tps, foreign, steal = measure(b, b.clusters[name], pgbench_args(b, mode), a.duration)
        return tps, foreign, steal, None

    runs, _ = alternate(b, "round", names, a.rounds, one)

    # what n1detect saw meanwhile: pgbench -S is one long unit per connection
    seen = b.clusters["B"].psql(
        "SELECT kind || ': ' || calls || ' calls in ' || bursts || ' bursts, ' || query "
        "FROM n1_offenders ORDER BY calls DESC LIMIT 3")
    info = b.clusters["B"].psql("SELECT 'offenders ' || offenders || ', bursts_total ' || bursts_total FROM n1_info")

    out = []
    out.append(pgbench_table(b, runs, names))
    costs = {}
    for mode in MODES:
        costs[mode] = {n: cost_of(runs, mode, n) for n in names if n != "A"}
    out.append(per_run_table(runs, names, a.noise_threshold))
    out.append(noise_note(b))
    b.discarded = []
    out.append("What n1detect recorded on B during the run (n1_info: %s):\n  %s\n"
               % (info, seen.replace("\n", "\n  ")))
    out.append("pgbench -S sends its SELECTs back to back, without transaction blocks or idle\n"
               "gaps > n1detect.max_gap, so each pgbench connection is one unit of work and its\n"
               "SELECT becomes a 'loop' burst after 5 calls: this run measures n1detect's\n"
               "in-burst path (statement recorded, burst updated in the backend's slot).\n")
    verdict = []
    for mode in MODES:
        n1, ss = costs[mode]["B"], costs[mode]["C"]
        pm, plo, phi = paired_cost(runs, mode, "B")
        rb, rc = paired_ratios(runs, mode, "B"), paired_ratios(runs, mode, "C")
        diff = [(rb[r] - rc[r]) * 100.0 for r in rb if r in rc]   # > 0: n1detect cheaper
        dlo, dhi = boot_ci(diff)
        if phi <= 1.0:
            resolved = "resolved: the whole interval is <= 1%"
        elif plo > 1.0:
            resolved = "resolved: the whole interval is > 1%"
        else:
            resolved = "not resolved by this run: the interval spans 1%"
        verdict.append(
            "pgbench -S -M %s: n1detect costs %.2f%% of TPS (target <= 1%%: %s)\n"
            "  paired %.2f%%, 95%% interval [%.2f%%, %.2f%%]: %s\n"
            "  pg_stat_statements costs %.2f%%; n1detect lower: %s (pg_stat_statements' paired\n"
            "  cost minus n1detect's: %+.2f points, 95%% interval [%+.2f, %+.2f])"
            % (mode, n1, "met" if n1 <= 1.0 else "MISSED by %.2f points" % (n1 - 1.0),
               pm, plo, phi, resolved, ss, "yes" if n1 < ss else "NO",
               statistics.median(diff), dlo, dhi))
        if "E" in names:
            em, elo, ehi = paired_cost(runs, mode, "E")
            verdict.append(
                "  control: E, a second baseline cluster, \"costs\" %.2f%% (paired %.2f%%, [%.2f%%, %.2f%%]):\n"
                "  differences of that size between clusters are noise on this machine"
                % (costs[mode]["E"], em, elo, ehi))
    out.append("\n".join(verdict) + "\n")
    b.write("pgbench.txt", b.header("pgbench -S: four configurations in alternation") + "\n".join(out))
    b.summary["pgbench"] = verdict
    b.summary["pgbench_costs"] = costs


def cost_of(runs, mode, name, base="A"):
    """TPS cost in % of the configuration against the baseline: 1 - ratio of the medians."""
    med = statistics.median([r[3] for r in runs if r[1] == mode and r[2] == name])
    medb = statistics.median([r[3] for r in runs if r[1] == mode and r[2] == base])
    return (1.0 - med / medb) * 100.0


def paired_ratios(runs, mode, name, base="A"):
    """{round: TPS of name / TPS of base in the same round}."""
    basevals = {r[0]: r[3] for r in runs if r[1] == mode and r[2] == base}
    return {r[0]: r[3] / basevals[r[0]] for r in runs
            if r[1] == mode and r[2] == name and r[0] in basevals}


def boot_ci(values, n=4000, seed=1):
    """95% bootstrap interval of the median of values."""
    rnd = random.Random(seed)
    k = len(values)
    est = sorted(statistics.median([values[rnd.randrange(k)] for _ in range(k)]) for _ in range(n))
    return est[int(0.025 * n)], est[int(0.975 * n) - 1]


def paired_cost(runs, mode, name, base="A"):
    """Median of the paired costs (%) and its 95% bootstrap interval."""
    costs = [(1.0 - v) * 100.0 for v in paired_ratios(runs, mode, name, base).values()]
    lo, hi = boot_ci(costs)
    return statistics.median(costs), lo, hi


def pgbench_table(b, runs, names, base="A", title=None):
    lines = []
    lines.append(title or "TPS per configuration (medians of %d rounds; ratios to the baseline A)"
                 % max(r[0] for r in runs))
    lines.append("")
    hdr = "%-9s %-2s %-30s %8s %8s %8s %7s %8s   %-26s" % (
        "mode", "", "configuration", "median", "min", "max", "ratio", "cost",
        "paired cost  [95% interval]")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for mode in MODES:
        basevals = [r[3] for r in runs if r[1] == mode and r[2] == base]
        if not basevals:
            continue
        bmed = statistics.median(basevals)
        for name in names:
            vals = [r[3] for r in runs if r[1] == mode and r[2] == name]
            if not vals:
                continue
            med, lo, hi = summarize(vals)
            ratio = med / bmed
            if name == base:
                tail = "-"
            else:
                pm, plo, phi = paired_cost(runs, mode, name, base)
                tail = "%+6.2f%%  [%+.2f%%, %+.2f%%]" % (pm, plo, phi)
            lines.append("%-9s %-2s %-30s %8.0f %8.0f %8.0f %7.4f %8s   %s" % (
                mode, name, LABEL.get(name, name), med, lo, hi, ratio,
                "-" if name == base else pct((1 - ratio) * 100), tail))
        lines.append("")
    lines.append("ratio = median TPS / median TPS of A; cost = 1 - ratio.  paired cost = median over\n"
                 "the rounds of 1 - TPS / TPS of A in the same round (slow drift cancels), with a 95%\n"
                 "bootstrap interval of that median: how precisely this run measured the cost.\n")
    return "\n".join(lines)


def per_run_table(runs, names, threshold):
    lines = ["Every run (TPS and 'foreign' CPU: what other processes on the machine took during",
             "the run, in %% of all CPUs; runs above %.0f%% are marked *)" % threshold, ""]
    hdr = "%-6s %-9s " % ("round", "mode") + " ".join("%14s" % n for n in names)
    lines.append(hdr)
    lines.append("-" * len(hdr))
    rounds = sorted(set(r[0] for r in runs))
    disturbed = 0
    for rd in rounds:
        for mode in MODES:
            cells = []
            for n in names:
                m = [r for r in runs if r[0] == rd and r[1] == mode and r[2] == n]
                if not m:
                    cells.append("%14s" % "")
                    continue
                _, _, _, tps, foreign, steal = m[0]
                mark = "*" if foreign > threshold else " "
                disturbed += foreign > threshold
                cells.append("%7.0f %4.1f%s" % (tps, foreign, mark))
            if any(c.strip() for c in cells):
                lines.append("%-6d %-9s " % (rd, mode) + " ".join(cells))
    foreign_all = [r[4] for r in runs]
    steal_all = [r[5] for r in runs]
    lines.append("")
    lines.append("Foreign CPU: median %.1f%%, max %.1f%%; hypervisor steal max %.1f%%; "
                 "%d of %d runs marked." % (statistics.median(foreign_all), max(foreign_all),
                                            max(steal_all), disturbed, len(runs)))
    return "\n".join(lines) + "\n"


# ---------- slow path: the same beside a naive N+1 workload ----------

SIDE_LOOKUPS = 20


def side_script(b):
    """A naive N+1 page: a list of 20 accounts, then one query per account."""
    top = 100000 * b.args.scale - SIDE_LOOKUPS
    lines = ["\\set a random(1, %d)" % top,
             "SELECT aid, bid FROM pgbench_accounts WHERE aid BETWEEN :a AND :a + %d;"
             % (SIDE_LOOKUPS - 1)]
    for i in range(SIDE_LOOKUPS):
        lines.append("\\set k%d :a + %d" % (i, i))
        lines.append("SELECT abalance FROM pgbench_accounts WHERE aid = :k%d;" % i)
    lines.append("\\sleep 120 ms")  # > n1detect.max_gap (100 ms): the unit of work ends
    path = os.path.join(b.work, "side.sql")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def burst_counts(c):
    total = int(c.psql("SELECT bursts_total FROM n1_info"))
    rows = c.psql("SELECT kind, sum(bursts) FROM n1_offenders GROUP BY kind")
    by_kind = {}
    for line in rows.splitlines():
        if line:
            k, v = line.split("|")
            by_kind[k] = int(v)
    return total, by_kind


def phase_slowpath(b):
    a = b.args
    b.phase_wait_start = b.waited
    ensure_clusters(b, ["A", "B"])
    for name in ("C", "D", "E"):  # not needed here: keep the machine quiet
        if name in b.clusters:
            b.clusters[name].stop()
            del b.clusters[name]
    script = side_script(b)
    log("slow path: pgbench -S beside a naive N+1 workload (%s)" % os.path.basename(script))
    def one(name, mode):
        c = b.clusters[name]
        before = burst_counts(c) if name == "B" else None
        side_cmd = [b.bin("pgbench")] + c.conn() + [
            "-n", "-f", script, "-M", "extended", "-c", "1", "-j", "1",
            "-T", str(a.duration + 3), "postgres"]
        side = subprocess.Popen(side_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(1.5)
        tps, foreign, steal = measure(b, c, pgbench_args(b, mode), a.duration)
        sout, serr = side.communicate()
        if side.returncode != 0:
            raise RuntimeError("side workload failed: %s" % serr)
        m = re.search(r"number of transactions actually processed: (\d+)", sout)
        side_tx = int(m.group(1)) if m else 0
        delta_total, delta_kind = None, {}
        if before is not None:
            time.sleep(0.3)
            after = burst_counts(c)
            delta_total = after[0] - before[0]
            delta_kind = {k: v - before[1].get(k, 0) for k, v in after[1].items()
                          if v - before[1].get(k, 0)}
        return tps, foreign, steal, (name, side_tx, a.duration + 3, delta_total, delta_kind)

    runs, side_stats = alternate(b, "slow round", ["A", "B"], a.slow_rounds, one)
    out = [pgbench_table(b, runs, ["A", "B"], title=(
        "TPS of pgbench -S while a naive N+1 workload runs beside it (medians of %d rounds)"
        % a.slow_rounds))]
    out.append(per_run_table(runs, ["A", "B"], a.noise_threshold))
    out.append(noise_note(b))
    tx_a = [s[1] for s in side_stats if s[0] == "A"]
    tx_b = [s[1] for s in side_stats if s[0] == "B"]
    bursts = [s[3] for s in side_stats if s[0] == "B"]
    kinds = {}
    for s in side_stats:
        for k, v in s[4].items():
            kinds[k] = kinds.get(k, 0) + v
    secs = a.duration + 3
    out.append(
        "Side workload (%s, pgbench -M extended, 1 client, %d s per run): a list query returning\n"
        "%d rows, then one lookup per row, then \\sleep 120 ms (> max_gap) so each page is a unit.\n"
        "  pages (units) per run, median: A %d, B %d  (%.1f/s on B)\n"
        "  n1_info.bursts_total added per run on B, median: %d (min %d, max %d) = %.1f bursts/s;\n"
        "  by kind over all runs (n1_offenders.bursts): %s\n"
        "  (each pgbench -S connection also ends one 'loop' burst per run: %d per run)\n"
        % (os.path.basename(script), secs, SIDE_LOOKUPS, statistics.median(tx_a), statistics.median(tx_b),
           statistics.median(tx_b) / secs, statistics.median(bursts), min(bursts), max(bursts),
           statistics.median(bursts) / secs,
           ", ".join("%s %d" % kv for kv in sorted(kinds.items())) or "none", a.clients))
    verdict = []
    for mode in MODES:
        n1 = cost_of(runs, mode, "B")
        pm, plo, phi = paired_cost(runs, mode, "B")
        verdict.append("slow path, pgbench -S -M %s: n1detect costs %.2f%% of TPS beside the N+1\n"
                       "  workload (%.1f bursts/s); paired %.2f%%, 95%% interval [%.2f%%, %.2f%%]"
                       % (mode, n1, statistics.median(bursts) / secs, pm, plo, phi))
    out.append("\n".join(verdict) + "\n")
    b.write("slowpath.txt", b.header("pgbench -S beside a naive N+1 workload (slow path)") + "\n".join(out))
    b.summary["slowpath"] = verdict


# ---------- callgrind: instructions per statement ----------

def single_user_output_fields(text):
    return re.findall(r'^\s*\d+: (\w+) = "([^"]*)"', text, re.M)


def phase_callgrind(b):
    a = b.args
    n = a.statements
    conf = BASE_CONF.format(sock=b.sock, shared_buffers="128MB")
    cg = Cluster(b, "callgrind", a.port_base + 8, "n1detect", conf)
    cg.initdb()
    cg.start()
    b.run([b.bin("pgbench")] + cg.conn() + ["-i", "-q", "-s", "1", "postgres"])
    cg.psql("CREATE EXTENSION n1detect")
    cg.psql("VACUUM ANALYZE")
    cg.psql("CHECKPOINT")
    cg.stop()

    rnd = random.Random(42)
    stmts = os.path.join(b.work, "statements-%d.sql" % n)
    with open(stmts, "w") as f:
        for _ in range(n):
            f.write("SELECT abalance FROM pgbench_accounts WHERE aid = %d;\n" % rnd.randint(1, 100000))
    empty = os.path.join(b.work, "statements-0.sql")
    open(empty, "w").close()
    check = os.path.join(b.work, "statements-check.sql")
    with open(check, "w") as f, open(stmts) as s:
        f.write(s.read())
        f.write("SELECT kind, calls, query FROM n1_offenders;\n")
        f.write("SELECT max(seq) AS statements_recorded FROM n1_backend_statements "
                "WHERE pid = pg_backend_pid();\n")

    variants = [
        # key, label, preload, extra settings
        ("none", "no library", "", []),
        ("n1", "n1detect", "n1detect", ["n1detect.save=off"]),
        ("n1q", "n1detect, min_calls=1000000 (no burst)", "n1detect",
         ["n1detect.save=off", "n1detect.min_calls=1000000"]),
        ("pgss", "pg_stat_statements", "pg_stat_statements", ["pg_stat_statements.save=off"]),
        # the baseline again: how repeatable a count is
        ("none2", "no library (again: repeatability)", "", []),
    ]
    rundir = os.path.join(b.work, "clusters", "callgrind-run")

    def single(preload, extra, infile, valgrind_out=None):
        if os.path.exists(rundir):
            shutil.rmtree(rundir)
        shutil.copytree(cg.dir, rundir, symlinks=True)
        os.chmod(rundir, 0o700)
        cmd = [b.bin("postgres"), "--single", "-D", rundir, "-c", "compute_query_id=on",
               "-c", "jit=off"]
        if preload:
            cmd += ["-c", "shared_preload_libraries=" + preload]
        for e in extra:
            cmd += ["-c", e]
        cmd.append("postgres")
        if valgrind_out:
            cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + valgrind_out] + cmd
        with open(infile) as fin:
            r = subprocess.run(cmd, stdin=fin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        if r.returncode != 0:
            raise RuntimeError("single-user run failed: %s\n%s" % (" ".join(cmd), r.stderr[-2000:]))
        return r.stdout

    # n1detect really records in single-user mode
    checks = []
    for key, label, preload, extra in variants:
        if not preload.startswith("n1detect"):
            continue
        fields = single_user_output_fields(single(preload, extra, check))
        got = dict()
        for k, v in fields:
            if k in ("kind", "calls", "statements_recorded"):
                got.setdefault(k, v)
        checks.append("  %-42s n1_offenders: %s; n1_backend_statements max(seq): %s"
                      % (label, ("kind %s, calls %s" % (got["kind"], got["calls"]))
                         if "kind" in got else "no row", got.get("statements_recorded", "?")))
        ok = got.get("statements_recorded") == str(n)
        if key == "n1":
            ok = ok and got.get("kind") == "loop" and got.get("calls") == str(n)
        if not ok:
            raise RuntimeError("n1detect did not record the statements in single-user mode: %r" % got)

    totals = {}
    outs = {}
    for key, label, preload, extra in variants:
        for count, infile in ((0, empty), (n, stmts)):
            path = os.path.join(b.work, "callgrind.%s.%d.out" % (key, count))
            t0 = time.monotonic()
            single(preload, extra, infile, path)
            prof_total = None
            with open(path) as f:
                for line in f:
                    if line.startswith("summary:"):
                        prof_total = int(line.split()[1])
            totals[(key, count)] = prof_total
            outs[(key, count)] = path
            log("callgrind %-45s %6d statements: %d Ir (%.0f s)" % (label, count, prof_total,
                                                                    time.monotonic() - t0))

    def per_stmt(key):
        return ((totals[(key, n)] - totals[(key, 0)]) - (totals[("none", n)] - totals[("none", 0)])) / n

    base_per = (totals[("none", n)] - totals[("none", 0)]) / n
    lines = []
    lines.append("Total instructions (callgrind Ir) of a single-user backend (postgres --single,\n"
                 "compute_query_id=on) fed %d statements like pgbench -S's\n"
                 "  SELECT abalance FROM pgbench_accounts WHERE aid = <random literal>;\n"
                 "or none (start-up and shut-down only).  extra/statement =\n"
                 "  ((with_N - with_0) - (without_N - without_0)) / N\n" % n)
    hdr = "%-42s %15s %15s %12s %12s %8s" % ("configuration", "0 statements", "%d statements" % n,
                                             "Ir/stmt", "extra/stmt", "extra %")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for key, label, preload, extra in variants:
        per = (totals[(key, n)] - totals[(key, 0)]) / n
        lines.append("%-42s %15d %15d %12.1f %12s %8s" % (
            label, totals[(key, 0)], totals[(key, n)], per,
            "-" if key == "none" else "%.1f" % per_stmt(key),
            "-" if key == "none" else "%.2f%%" % (per_stmt(key) * 100 / base_per)))
    lines.append("")
    lines.append("Check that n1detect recorded the statements in single-user mode (same input,\n"
                 "plus two queries at the end, run without valgrind):")
    lines.extend(checks)
    lines.append("")
    lines.append("Repeatability: the baseline run twice differs by %.1f instructions per statement."
                 % abs(per_stmt("none2")))
    lines.append("")
    lines.append("The %d statements form one unit of work (no gap, no transaction block), so from\n"
                 "the 5th on they are a 'loop' burst, as pgbench -S's are: 'n1detect' is the\n"
                 "in-burst path.  With min_calls=1000000 no burst ever starts: the plain recording\n"
                 "path (hooks, parameter hash, slot event, detector bookkeeping).\n" % n)

    # where the instructions go
    import io
    detail = io.StringIO()
    attributed = {}
    for key, label, obj in (("n1", "n1detect (in a burst)", "n1detect.so"),
                            ("n1q", "n1detect, no burst", "n1detect.so"),
                            ("pgss", "pg_stat_statements (no symbols: addresses)", "pg_stat_statements.so")):
        detail.write("--- %s: instructions per statement by function (%d-statement run minus\n"
                     "    the 0-statement run; self = in the function, callees = calls out of the\n"
                     "    library except the executor chain its hooks pass on to)\n" % (label, n))
        _, attributed[key] = cgattr.report(outs[(key, n)], obj, n, outs[(key, 0)], out=detail)
        detail.write("    attributed %.0f of the %.0f measured; the rest is what the library makes\n"
                     "    PostgreSQL do besides its own calls (see the whole-program table below;\n"
                     "    for pg_stat_statements, mostly the executor's instrumentation)\n\n"
                     % (attributed[key], per_stmt(key)))
    detail.write("--- n1detect (in a burst) against no library, whole program: change of each\n"
                 "    function's own instructions per statement (postgres's static functions show\n"
                 "    as addresses: no debug symbols)\n")
    cgattr.diff_report(outs[("n1", n)], outs[("n1", 0)], outs[("none", n)], outs[("none", 0)], n,
                       top=30, out=detail)
    detail.write("    Functions of PostgreSQL or libc that appear here with the same number of calls\n"
                 "    in both runs (strcmp, memcmp, hash_search_with_hash_value) cost more or less\n"
                 "    because the library moves memory around (alignment, hash chains): layout,\n"
                 "    not work.  CallXactCallbacks (an unnamed static, called by\n"
                 "    CommitTransactionCommand) runs n1detect's xact_callback.\n")

    n1 = per_stmt("n1")
    verdict = ("instructions per statement: n1detect adds %.0f (target <= 1000: %s), %.0f of them in\n"
               "  its own functions and their calls; pg_stat_statements adds %.0f; without a burst\n"
               "  n1detect adds %.0f"
               % (n1, "met" if n1 <= 1000 else "MISSED by %.0f, %.1f%%" % (n1 - 1000, (n1 - 1000) / 10.0),
                  attributed["n1"], per_stmt("pgss"), per_stmt("n1q")))
    lines.append(verdict)
    lines.append("")
    lines.append(detail.getvalue())
    b.write("callgrind.txt", b.header("Instructions per statement (callgrind)") + "\n".join(lines))
    b.summary["callgrind"] = [verdict]

    # line-level annotation of n1detect's sources, for whoever optimizes the hot path
    src = outs[("n1", n)]
    if "=" in a.src_map:
        old, new = a.src_map.split("=", 1)
        src = src + ".mapped"
        with open(outs[("n1", n)]) as fin, open(src, "w") as fout:
            for line in fin:
                if line[:3] in ("fl=", "fi=", "fe=") or line[:4] in ("cfi=", "cfl="):
                    line = line.replace(old, new)
                fout.write(line)
    ann = b.run(["callgrind_annotate", "--auto=yes", "--threshold=100", "--context=0", src],
                check=False).stdout
    if "=" in a.src_map:
        ann = ann.replace(a.src_map.split("=", 1)[1], "src/")
    b.write("callgrind-lines.txt", b.header("n1detect: instructions per statement by source line")
            + annotate_lines(ann, n))


def annotate_lines(ann, n, min_per_stmt=1.0):
    """Keeps the source lines of n1detect's hot-path files costing >= min_per_stmt per statement."""
    wanted = ("recorder.c", "detector.c", "backend_slots.c", "query_text.c")
    out = ["Source lines of %s costing >= %.0f instruction per statement (Ir / %d), from\n"
           "callgrind_annotate --auto=yes of the n1detect run (in-burst path).\n"
           % (", ".join(wanted), min_per_stmt, n)]
    current = None
    for line in ann.splitlines():
        m = re.match(r"^-- (?:Auto-annotated source|User-annotated source): (.*)$", line)
        if m:
            current = m.group(1) if m.group(1).endswith(wanted) else None
            if current:
                out.append("\n--- %s" % current)
            continue
        if current is None:
            continue
        m = re.match(r"^\s*([\d,]+)\s(?:\([ \d.]+%\)\s)?\s*(.*)$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        if ir / n >= min_per_stmt:
            out.append("%8.1f  %s" % (ir / n, m.group(2).rstrip()))
    return "\n".join(out) + "\n"


# ---------- shared memory ----------

def phase_shmem(b):
    a = b.args
    conf = "\nlisten_addresses = ''\nunix_socket_directories = '%s'\n" % b.sock
    c = Cluster(b, "shmem", a.port_base + 7, "", conf)
    c.initdb()
    rows = []
    for mc in (100, 1000):
        for lib in ("", "n1detect", "pg_stat_statements"):
            c.preload = lib
            c.start(["-c", "max_connections=%d" % mc])
            named = c.psql("SELECT name || '|' || allocated_size FROM pg_shmem_allocations "
                           "WHERE name LIKE 'n1detect%' OR name LIKE 'pg_stat_statements%' ORDER BY name")
            used = int(c.psql("SELECT sum(allocated_size) FROM pg_shmem_allocations WHERE name <> '<unused>'"))
            size = c.psql("SHOW shared_memory_size")
            c.stop()
            rows.append((mc, lib, [tuple(l.split("|")) for l in named.splitlines() if l], used, size))
    lines = ["Shared memory at default settings (pg_shmem_allocations of a running server;\n"
             "n1detect.max_offenders = 1000, n1detect.max_bursts = 1000, one slot per backend\n"
             "and auxiliary process).\n"]
    hdr = "%-16s %-20s %-32s %12s %14s %14s" % ("max_connections", "library", "allocation", "bytes",
                                               "in use, delta", "shared_memory")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    summary = []
    for mc in (100, 1000):
        base_used = [r[3] for r in rows if r[0] == mc and r[1] == ""][0]
        for (m, lib, named, used, size) in rows:
            if m != mc:
                continue
            label = lib or "(none)"
            if not named:
                lines.append("%-16d %-20s %-32s %12s %14s %14s" % (mc, label, "-", "-",
                                                                   "-" if not lib else used - base_used, size))
            for i, (name, nbytes) in enumerate(named):
                lines.append("%-16s %-20s %-32s %12s %14s %14s" % (
                    mc if i == 0 else "", label if i == 0 else "", name, nbytes,
                    used - base_used if i == 0 else "", size if i == 0 else ""))
            if named:
                total = sum(int(x[1]) for x in named)
                lines.append("%-16s %-20s %-32s %12d" % ("", "", "sum of named", total))
                if lib == "n1detect":
                    summary.append("max_connections %d: n1detect takes %.1f MiB (named allocations; "
                                   "%.1f MiB more shared memory in use than without it)"
                                   % (mc, total / 1048576.0, (used - base_used) / 1048576.0))
        lines.append("")
    lines.append("'in use, delta' = sum(allocated_size) of all allocations but <unused>, minus the same\n"
                 "without any library: it includes what the named entries miss (a shared hash\n"
                 "table's entries are allocated anonymously, the LWLock tranche).\n")
    lines.extend(summary)
    b.write("shmem.txt", b.header("Shared memory") + "\n".join(lines) + "\n")
    b.summary["shmem"] = summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--meta")
    ap.add_argument("--phases", default="pgbench,slowpath,callgrind,shmem")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--slow-rounds", type=int, default=6)
    ap.add_argument("--no-control", dest="control", action="store_false",
                    help="leave out E, the second baseline cluster of the pgbench phase")
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--statements", type=int, default=10000)
    ap.add_argument("--port-base", type=int, default=56430)
    ap.add_argument("--shared-buffers", default="256MB")
    ap.add_argument("--noise-threshold", type=float, default=3.0,
                    help="foreign CPU %% above which a round is run again")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--max-wait", type=int, default=900,
                    help="seconds in all to wait for a quiet machine")
    ap.add_argument("--src-map", default="",
                    help="OLD=NEW: read the sources under OLD (as the debug information names them) from NEW")
    args = ap.parse_args()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    for p in phases:
        if p not in ("pgbench", "slowpath", "callgrind", "shmem"):
            ap.error("unknown phase %s" % p)
    b = Bench(args)
    b.summary = {}
    b.discarded = []
    b.waited = 0
    b.phase_wait_start = 0
    b.wait_exhausted = False
    t0 = time.monotonic()
    try:
        # the quiet measurements first, then the long ones
        if "shmem" in phases:
            phase_shmem(b)
        if "callgrind" in phases:
            phase_callgrind(b)
        if "pgbench" in phases:
            phase_pgbench(b)
        if "slowpath" in phases:
            phase_slowpath(b)
    finally:
        for c in list(b.clusters.values()):
            try:
                c.stop("immediate")
            except Exception:
                pass
    lines = []
    for key in ("pgbench", "slowpath", "callgrind", "shmem"):
        for v in b.summary.get(key, []):
            lines.append(v)
    lines.append("")
    lines.append("whole run: %.1f min" % ((time.monotonic() - t0) / 60.0))
    b.write("summary.txt", b.header("n1detect overhead: summary") + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
