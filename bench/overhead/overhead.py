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


# ---------- callgrind: marginal instructions per statement ----------

SQLCOMMENTER = (" /*controller='accounts',framework='django%3A4.2',route='%5Eapi/accounts/',"
                "traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/")
MARGINALIA = (" /*application:Shop,controller:accounts,action:show,"
              "line:/app/controllers/accounts_controller.rb:12:in `show'*/")

# key, label, statement for a random number r (same seed for every run)
WORKLOADS = [
    ("one", "single-row point lookup, no comment",
     lambda r: "SELECT abalance FROM pgbench_accounts WHERE aid = %d;" % r.randint(1, 100000)),
    ("sqlc", "the same + 170-byte sqlcommenter comment (traceparent)",
     lambda r: "SELECT abalance FROM pgbench_accounts WHERE aid = %d%s;"
     % (r.randint(1, 100000), SQLCOMMENTER)),
    ("marg", "the same + 110-byte marginalia comment",
     lambda r: "SELECT abalance FROM pgbench_accounts WHERE aid = %d%s;"
     % (r.randint(1, 100000), MARGINALIA)),
    ("zero", "0-row point lookup (no such key)",
     lambda r: "SELECT abalance FROM pgbench_accounts WHERE aid = %d;" % r.randint(100001, 200000)),
    ("list", "100-row list query",
     lambda r: "SELECT id, author_id, title, price FROM books WHERE id > %d ORDER BY id LIMIT 100;"
     % r.randint(1, 19000)),
    # one message = one transaction block = one unit of work with a 20-call loop:
    # its figure is per unit (the loop's burst published at COMMIT, the
    # lookup's row values asked for chains on calls 2-20)
    ("unit20", "a unit: BEGIN, 20 point lookups, COMMIT (one message)",
     lambda r: "BEGIN; " + " ".join("SELECT abalance FROM pgbench_accounts WHERE aid = %d;"
                                    % r.randint(1, 100000) for _ in range(UNIT_LOOKUPS)) + " COMMIT;"),
]
UNIT_LOOKUPS = 20
CG_VARIANTS = [
    # key, label, shared_preload_libraries, extra settings
    ("none", "no library", "", []),
    ("n1", "n1detect", "n1detect", ["n1detect.save=off"]),
    ("pgss", "pg_stat_statements", "pg_stat_statements", ["pg_stat_statements.save=off"]),
    # the same statements when none of them makes a burst: the cost on traffic
    # that is no N+1 (every statement recorded, counted, never published)
    ("n1calm", "n1detect, no burst (min_calls 1000000)", "n1detect",
     ["n1detect.save=off", "n1detect.min_calls=1000000"]),
    ("none2", "no library, again (repeatability)", "", []),
]
SHORT = 200            # statements of the short run; the long one has SHORT + --statements


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError("no total in %s" % path)


def pipelined_session(sock_path, statements):
    """One connection (protocol 3, trust authentication) that sends every statement
    as a simple query at once, from a thread, while reading the results: the
    backend finds its next statement already there and never waits for the client,
    so its instruction count does not depend on timing (with one round trip per
    statement, as psql does, the waits in WaitEventSetWait vary from run to run by
    about 100 instructions per statement).  Returns the backend's pid."""
    import getpass
    import socket
    import struct
    import threading

    def message(kind, body):
        return kind + struct.pack("!i", len(body) + 4) + body

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    params = b"user\0" + getpass.getuser().encode() + b"\0database\0postgres\0\0"
    s.sendall(struct.pack("!ii", len(params) + 8, 196608) + params)
    buf = bytearray()

    def read_until(kind, count=1):
        """Reads messages until count messages of kind; returns the DataRow fields seen."""
        nonlocal buf
        rows = []
        while count > 0:
            while len(buf) < 5 or len(buf) < 1 + struct.unpack("!i", bytes(buf[1:5]))[0]:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("server closed the connection")
                buf += chunk
            k = bytes(buf[:1])
            n = struct.unpack("!i", bytes(buf[1:5]))[0]
            body = bytes(buf[5:1 + n])
            del buf[:1 + n]
            if k == b"E":
                raise RuntimeError("server error: %r" % body)
            if k == b"D" and not rows:
                ln = struct.unpack("!i", body[2:6])[0]
                rows.append(body[6:6 + ln].decode())
            if k == kind:
                count -= 1
        return rows

    read_until(b"Z")
    s.sendall(message(b"Q", b"SELECT pg_backend_pid()\0"))
    pid = int(read_until(b"Z")[0])
    data = b"".join(message(b"Q", st.encode() + b"\0") for st in statements)
    sender = threading.Thread(target=s.sendall, args=(data,))
    sender.start()
    read_until(b"Z", len(statements))
    sender.join()
    s.sendall(message(b"X", b""))
    s.close()
    return pid


def phase_callgrind(b):
    a = b.args
    n = a.statements
    lengths = (SHORT, SHORT + n)
    conf = BASE_CONF.format(sock=b.sock, shared_buffers="128MB")
    cg = Cluster(b, "callgrind", a.port_base + 8, "", conf)
    cg.initdb()
    cg.start()
    b.run([b.bin("pgbench")] + cg.conn() + ["-i", "-q", "-s", "1", "postgres"])
    cg.psql("CREATE TABLE books (id bigint PRIMARY KEY, author_id int, title text, price float8);"
            "INSERT INTO books SELECT g, g % 97, 'title ' || g, g * 1.5 FROM generate_series(1, 20000) g;"
            "CREATE EXTENSION n1detect; CREATE EXTENSION pg_prewarm")
    cg.psql("VACUUM ANALYZE")
    cg.psql("CHECKPOINT")
    cg.stop()

    wanted = [w.strip() for w in a.cg_workloads.split(",")] if a.cg_workloads else None
    workloads = [w for w in WORKLOADS if wanted is None or w[0] in wanted]
    statements = {}
    for key, _, gen in workloads:
        rnd = random.Random(42)       # the short run is the long run's beginning
        statements[key] = [gen(rnd) for _ in range(lengths[1])]

    only = [v.strip() for v in a.cg_variants.split(",")] if a.cg_variants else None
    variants = [v for v in CG_VARIANTS if only is None or v[0] in only]
    rundir = os.path.join(b.work, "clusters", "callgrind-run")
    outdir = os.path.join(b.work, "callgrind")
    os.makedirs(outdir, exist_ok=True)
    totals, outs, checks = {}, {}, {}
    for vkey, label, preload, extra in variants:
        if os.path.exists(rundir):
            shutil.rmtree(rundir)
        shutil.copytree(cg.dir, rundir, symlinks=True)
        os.chmod(rundir, 0o700)
        t0 = time.monotonic()
        cmd = ["valgrind", "--tool=callgrind", "-q",
               "--callgrind-out-file=%s/%s.%%p" % (outdir, vkey),
               b.bin("postgres"), "-D", rundir, "-p", str(cg.port)]
        if preload:
            cmd += ["-c", "shared_preload_libraries=" + preload]
        for e in extra:
            cmd += ["-c", e]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(b.work, "logs", "callgrind-%s.log" % vkey), "w"))
        try:
            for _ in range(300):
                if b.run([b.bin("pg_isready")] + cg.conn() + ["-q"], check=False).returncode == 0:
                    break
                time.sleep(1)
            psql = [b.bin("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"] + cg.conn() + ["-d", "postgres"]
            # shared buffers warm: no run pays for reading pages the other did not
            b.run(psql + ["-c", "SELECT pg_prewarm(c) FROM unnest(ARRAY['pgbench_accounts', "
                          "'pgbench_accounts_pkey', 'books', 'books_pkey']) c"])
            for key, _, _ in workloads:
                for count in lengths:
                    pid = pipelined_session(os.path.join(b.sock, ".s.PGSQL.%d" % cg.port),
                                            statements[key][:count])
                    outs[(vkey, key, count)] = "%s/%s.%d" % (outdir, vkey, pid)
                    with open(os.path.join(outdir, "runs.txt"), "a") as f:
                        f.write("%s %s %d %s\n" % (vkey, key, count, outs[(vkey, key, count)]))
            if preload.startswith("n1detect"):
                checks[vkey] = b.run(psql + ["-F", " ", "-c",
                                             "SELECT kind, calls, left(query, 40) FROM n1_offenders "
                                             "ORDER BY calls DESC"]).stdout.strip()
        finally:
            b.run([b.bin("pg_ctl"), "-D", rundir, "-m", "fast", "-w", "-t", "300", "stop"], check=False)
            server.wait()
        for key, _, _ in workloads:
            for count in lengths:
                totals[(vkey, key, count)] = callgrind_total(outs[(vkey, key, count)])
        log("callgrind %-40s %.0f s" % (label, time.monotonic() - t0))

    def marginal(vkey, key):
        return (totals[(vkey, key, lengths[1])] - totals[(vkey, key, lengths[0])]) / n

    have = {v[0] for v in variants}
    lines = ["Marginal instructions per statement of a real backend: callgrind's total Ir of\n"
             "the backend process serving one connection that sends %d statements, minus\n"
             "the same for %d statements, divided by %d.  One-time costs (connection, first\n"
             "statement, caches, the first calls of a burst) cancel; what is left is what\n"
             "one more statement costs.  Each run is a connection of its own to a server\n"
             "started under valgrind (shared buffers prewarmed, same random keys in both\n"
             "lengths); extra = marginal with the library - marginal without.\n"
             % (lengths[1], lengths[0], n)]
    for key, label, gen in workloads:
        lines.append("  %-5s %s:\n        %s" % (key, label, gen(random.Random(42))))
    lines.append("")
    hdr = "%-36s" % "workload" + "".join("%14s" % v[0] for v in variants)
    if "none" in have:
        hdr += "".join("%18s" % ("extra " + v[0]) for v in variants if v[0] != "none")
    lines.append("marginal Ir per statement" + (" (and extra over no library)" if "none" in have else ""))
    lines.append(hdr)
    lines.append("-" * len(hdr))
    extra = {}
    for key, label, _ in workloads:
        row = "%-36s" % key + "".join("%14.1f" % marginal(v[0], key) for v in variants)
        if "none" in have:
            for v in variants:
                if v[0] == "none":
                    continue
                extra[(v[0], key)] = marginal(v[0], key) - marginal("none", key)
                row += "%18s" % ("%+.1f (%.2f%%)" % (extra[(v[0], key)],
                                                     100.0 * extra[(v[0], key)] / marginal("none", key)))
        lines.append(row)
    lines.append("")
    for vkey, text in checks.items():
        lines.append("Check: n1_offenders of the %s server after the runs (a loop per connection;\n"
                     "the commented statements are offenders of their own source):" % vkey)
        lines.extend("  " + l for l in text.splitlines())
        lines.append("")
    verdict = []
    keys = {w[0] for w in workloads}
    if "none" in have and "n1" in have and keys == {w[0] for w in WORKLOADS}:
        def v(key, target, what):
            x = extra[("n1", key)]
            return "  %-44s %+7.0f  (target <= %d: %s)" % (what, x, target, "met" if x <= target else "MISSED")
        verdict.append("n1detect, marginal instructions per statement over no library:")
        verdict.append(v("one", 350, "single-row point lookup"))
        verdict.append(v("sqlc", 350, "+ sqlcommenter comment with traceparent"))
        verdict.append(v("marg", 350, "+ marginalia comment"))
        verdict.append("  %-44s %+7.0f" % ("0-row statement", extra[("n1", "zero")]))
        verdict.append("  %-44s %+7.0f = %+.0f per lookup (unit of work, burst published)"
                       % ("transaction of %d point lookups" % UNIT_LOOKUPS, extra[("n1", "unit20")],
                          extra[("n1", "unit20")] / UNIT_LOOKUPS))
        pct_list = 100.0 * extra[("n1", "list")] / marginal("none", "list")
        verdict.append("  %-44s %+7.0f = %.2f%% of the statement (target <= 5%%: %s)"
                       % ("100-row list query", extra[("n1", "list")], pct_list,
                          "met" if pct_list <= 5 else "MISSED"))
        if "n1calm" in have:
            verdict.append("  (n1detect on the same lookup when it makes no burst: %+.0f)" % extra[("n1calm", "one")])
        if "pgss" in have:
            verdict.append("  (pg_stat_statements on the single-row lookup: %+.0f)" % extra[("pgss", "one")])
        if "none2" in have:
            verdict.append("  (no library measured twice differs by %.1f on the lookup, %.1f on the list)"
                           % (extra[("none2", "one")], extra[("none2", "list")]))
        lines.extend(verdict)
        lines.append("")

    # where n1detect's instructions go: long run minus short run, by function and by line
    import io
    detail = io.StringIO()
    if "n1" in have:
        for key in [k for k in ("one", "sqlc", "list") if k in keys]:
            detail.write("--- n1detect, %s: instructions per statement by function (long run minus\n"
                         "    short run; self = in the function, callees = calls out of the library\n"
                         "    except the executor chain its hooks pass on to)\n" % key)
            cgattr.report(outs[("n1", key, lengths[1])], "n1detect.so", n,
                          outs[("n1", key, lengths[0])], out=detail)
            detail.write("\n")
        if "none" in have:
            for key in [k for k in ("one", "list") if k in keys]:
                detail.write("--- n1detect against no library, %s, whole program: change of each\n"
                             "    function's own instructions per statement\n" % key)
                cgattr.diff_report(outs[("n1", key, lengths[1])], outs[("n1", key, lengths[0])],
                                   outs[("none", key, lengths[1])], outs[("none", key, lengths[0])],
                                   n, top=25, out=detail)
                detail.write("\n")
    lines.append(detail.getvalue())
    b.write("callgrind.txt", b.header("Marginal instructions per statement (callgrind)") + "\n".join(lines))
    b.summary["callgrind"] = verdict

    if "n1" in have:
        old, new = a.src_map.split("=", 1) if "=" in a.src_map else ("", "")
        text = []
        for key in [k for k in ("one", "sqlc", "marg", "list") if k in keys]:
            text.append("=== %s: %s" % (key, [w[1] for w in WORKLOADS if w[0] == key][0]))
            text.append(cgattr.line_report(outs[("n1", key, lengths[1])], outs[("n1", key, lengths[0])],
                                           n, "src/", old, new))
        b.write("callgrind-lines.txt", b.header("n1detect: marginal instructions per statement by source line")
                + "Self instructions per statement of each source line of n1detect (long run minus\n"
                  "short run, lines costing >= 1), inlined code at its own line.\n\n" + "\n".join(text))


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
    ap.add_argument("--statements", type=int, default=2000,
                    help="statements of the long callgrind run beyond the short run's 200")
    ap.add_argument("--cg-workloads", default="",
                    help="comma-separated subset of the callgrind workloads (default: all)")
    ap.add_argument("--cg-variants", default="",
                    help="comma-separated subset of none,n1,pgss,none2 for the callgrind phase")
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
