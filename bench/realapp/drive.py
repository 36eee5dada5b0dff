"""
Drives HyperKitty page by page with Django's test Client, as users would
(anonymous and logged in), and records two things per page:

- the truth side, inside the application: every query Django runs, through
  connection.execute_wrapper, with its parameters, the SQL psycopg2 sent, its
  Python call stack (application frames, and the template node being rendered
  for frames of Django's template engine), its timing, and the key-like values
  of its result rows (read from the client-side cursor, which is then scrolled
  back so the application reads the same rows);
- the n1detect side, outside the application: before each page a superuser
  connection calls n1_reset(), and after the page and a pause longer than
  n1detect.max_gap it reads n1_offenders and this backend's n1_bursts.

Pages are separated by that pause, so no unit of work spans two pages.  It
writes one JSON trace; adjudicate.py turns traces into results.  It never
judges anything itself and never changes the server's settings: the n1detect
configuration comes in through the connection options (RA_PGOPTIONS).

Usage: drive.py OUT.json   (environment as in hkproject/settings.py, plus
RA_ADMIN_DSN for the superuser connection and RA_PAUSE_MS)
"""
import datetime
import json
import os
import sys
import time

import django

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hkproject.settings")
django.setup()

import psycopg2  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

import mailstub  # noqa: E402

# frames of these packages are application frames (kept in stacks)
APP_PREFIXES = ("hyperkitty/", "django_mailman3/", "allauth/", "rest_framework/",
                "haystack/", "django_gravatar/", "django_q/", "django/")
SKIP_PREFIXES = ("django/db/", "django/test/", "django/core/handlers/",
                 "django/utils/deprecation.py", "django/utils/functional.py")
MAX_ROWS = 2000        # result rows read per query for its key values
KEY_COLUMN_SUFFIXES = ("_id", "_hash", "address", "email", "name", "username")


def short_path(filename):
    i = filename.find("dist-packages/")
    if i >= 0:
        return filename[i + len("dist-packages/"):]
    return None


def capture_stack():
    """Application frames, outermost first: 'file:line func' strings, and
    'tpl:name:line {% tag %}' for template nodes being rendered."""
    out = []
    f = sys._getframe(2)
    while f is not None:
        path = short_path(f.f_code.co_filename)
        if path and path.startswith(APP_PREFIXES) and not path.startswith(SKIP_PREFIXES):
            if path == "django/template/base.py" and f.f_code.co_name == "render_annotated":
                node = f.f_locals.get("self")
                token = getattr(node, "token", None)
                origin = getattr(node, "origin", None)
                if token is not None and origin is not None:
                    out.append("tpl:%s:%s %s" % (getattr(origin, "template_name", origin.name),
                                                 token.lineno, token.contents[:80]))
            elif not path.startswith("django/template/") and not path.startswith("django/"):
                out.append("%s:%d %s" % (path, f.f_lineno, f.f_code.co_name))
            elif path.startswith(("django/contrib/", "django/views/", "django/shortcuts")):
                out.append("%s:%d %s" % (path, f.f_lineno, f.f_code.co_name))
        f = f.f_back
    out.reverse()
    return out


def key_values(description, rows):
    """Per column (keyed "position:name": joins repeat names), the values of
    the rows that can identify something, as strings: integers of key-like
    columns (id, *_id, ...), texts of 4 to 255 characters, dates and times,
    uuids.  The adjudication looks for a loop's parameters among them."""
    cols = {}
    for i, d in enumerate(description):
        name = d.name.lower()
        is_key = name == "id" or name.endswith(KEY_COLUMN_SUFFIXES)
        vals = set()
        for r in rows:
            v = r[i]
            if v is None or isinstance(v, (bool, float, bytes, memoryview)):
                continue
            if isinstance(v, int):
                if is_key:
                    vals.add(str(v))
            elif isinstance(v, str):
                if 3 < len(v) <= 255:
                    vals.add(v)
            elif isinstance(v, (datetime.datetime, datetime.date)):
                vals.add(v.isoformat())
            elif hasattr(v, "hex"):
                vals.add(str(v))
        if vals:
            cols["%d:%s" % (i, d.name)] = sorted(vals)
    return cols


def jsonable(v):
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, bytes):
        return "<%d bytes>" % len(v)
    return str(v)


class Recorder:
    def __init__(self):
        self.queries = []

    def __call__(self, execute, sql, params, many, context):
        stack = capture_stack()
        t0 = time.monotonic()
        ok = False
        try:
            result = execute(sql, params, many, context)
            ok = True
            return result
        finally:
            t1 = time.monotonic()
            rec = {"sql": sql, "params": jsonable(params) if not many else None,
                   "many": bool(many), "t0": t0, "t1": t1, "stack": stack, "ok": ok}
            cur = getattr(context.get("cursor"), "cursor", None)
            if ok and cur is not None:
                q = getattr(cur, "query", None)
                if q is not None:
                    rec["sent"] = q.decode("utf-8", "replace") if isinstance(q, bytes) else q
                rec["named"] = getattr(cur, "name", None) is not None
                if not many and cur.description is not None and not rec["named"]:
                    rows = cur.fetchmany(MAX_ROWS)
                    rec["rows"] = cur.rowcount
                    rec["result"] = key_values(cur.description, rows)
                    if rows:
                        cur.scroll(0, mode="absolute")
            self.queries.append(rec)


def pages(data):
    """The pages: (name, user or None, method, url, data, extra headers)."""
    L = data["lists"]
    dev, usr, pkg = L[0], L[1], L[3]
    th = data["threads"]
    m = data["months"]
    xhr = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}
    u = "user0"
    hk = "/hyperkitty"
    return [
        ("index", None, "get", hk + "/", None, {}),
        ("index (logged in)", u, "get", hk + "/", None, {}),
        ("index sorted by activity", None, "get", hk + "/?sort=active", None, {}),
        ("find-list JSON", None, "get", hk + "/find-list?term=de", None, xhr),
        ("list overview", None, "get", "%s/list/%s/" % (hk, dev), None, {}),
        ("list overview (logged in)", u, "get", "%s/list/%s/" % (hk, usr), None, {}),
        ("overview: recent threads", None, "get", "%s/list/%s/recent-threads" % (hk, dev), None, xhr),
        ("overview: popular threads", None, "get", "%s/list/%s/pop-threads" % (hk, dev), None, xhr),
        ("overview: top threads", None, "get", "%s/list/%s/top-threads" % (hk, usr), None, xhr),
        ("overview: favorites", u, "get", "%s/list/%s/favorites" % (hk, dev), None, xhr),
        ("overview: posted to", u, "get", "%s/list/%s/posted-to" % (hk, dev), None, xhr),
        ("overview: top posters", None, "get", "%s/list/%s/top-posters" % (hk, dev), None, xhr),
        ("recent activity JSON", None, "get", "%s/list/%s/recent-activity" % (hk, dev), None, xhr),
        ("archives latest", None, "get", "%s/list/%s/latest" % (hk, dev), None, {}),
        ("archives by month", None, "get", "%s/list/%s/%s/" % (hk, dev, m[0]), None, {}),
        ("archives by month (logged in)", u, "get", "%s/list/%s/%s/" % (hk, pkg, m[1]), None, {}),
        ("archives by month, page 2", None, "get", "%s/list/%s/%s/?page=2" % (hk, usr, m[2]), None, {}),
        ("thread: longest", None, "get", "%s/list/%s/thread/%s/" % (hk, th[0][0], th[0][1]), None, {}),
        ("thread: longest (logged in)", u, "get", "%s/list/%s/thread/%s/" % (hk, th[0][0], th[0][1]), None, {}),
        ("thread: replies fragment", u, "get", "%s/list/%s/thread/%s/replies?sort=thread&offset=5" % (hk, th[0][0], th[0][1]), None, xhr),
        ("thread: tagged, with category", None, "get", "%s/list/%s/thread/%s/" % (hk, th[1][0], th[1][1]), None, {}),
        ("thread: with attachment (logged in)", u, "get", "%s/list/%s/thread/%s/?sort=date" % (hk, th[2][0], th[2][1]), None, {}),
        ("thread: short", None, "get", "%s/list/%s/thread/%s/" % (hk, th[3][0], th[3][1]), None, {}),
        ("thread: suggest tags JSON", u, "get", "%s/list/%s/thread/%s/suggest-tags?term=p" % (hk, th[1][0], th[1][1]), None, xhr),
        ("message", None, "get", "%s/list/%s/message/%s/" % (hk, data["messages"][0][0], data["messages"][0][1]), None, {}),
        ("message (logged in)", u, "get", "%s/list/%s/message/%s/" % (hk, data["messages"][1][0], data["messages"][1][1]), None, {}),
        ("vote on a message (POST)", u, "post", "%s/list/%s/message/%s/vote" % (hk, data["messages"][1][0], data["messages"][1][1]), {"vote": "1"}, xhr),
        ("favorite a thread (POST)", u, "post", "%s/list/%s/thread/%s/favorite" % (hk, th[3][0], th[3][1]), {"action": "add"}, xhr),
        ("search in a list", None, "get", "%s/search?q=build&mlist=%s" % (hk, dev), None, {}),
        ("search everywhere (logged in)", u, "get", "%s/search?q=patch+review" % hk, None, {}),
        ("user profile", u, "get", hk + "/profile/", None, {}),
        ("user profile: favorites", u, "get", hk + "/profile/favorites", None, xhr),
        ("user profile: last views", u, "get", hk + "/profile/last_views", None, xhr),
        ("user profile: votes", u, "get", hk + "/profile/votes", None, xhr),
        ("public profile", None, "get", "%s/users/%s/" % (hk, data["senders"][0]), None, {}),
        ("user posts in a list (logged in)", u, "get", "%s/users/%s/posts?list=%s" % (hk, data["senders"][0], dev), None, {}),
        ("user posts in another list (logged in)", u, "get", "%s/users/%s/posts?list=%s" % (hk, data["senders"][1], usr), None, {}),
        ("list feed (RSS)", None, "get", "%s/list/%s/feed/" % (hk, dev), None, {}),
        ("API: lists", None, "get", hk + "/api/lists/", None, {}),
        ("API: list detail", None, "get", "%s/api/list/%s/" % (hk, dev), None, {}),
        ("API: threads of a list", None, "get", "%s/api/list/%s/threads/" % (hk, dev), None, {}),
        ("API: threads of a list, next page", None, "get", "%s/api/list/%s/threads/?offset=10" % (hk, usr), None, {}),
        ("API: thread detail", None, "get", "%s/api/list/%s/thread/%s/" % (hk, th[0][0], th[0][1]), None, {}),
        ("API: emails of a thread", None, "get", "%s/api/list/%s/thread/%s/emails/" % (hk, th[0][0], th[0][1]), None, {}),
        ("API: emails of a list", None, "get", "%s/api/list/%s/emails/" % (hk, usr), None, {}),
        ("API: emails of a list, oldest first", None, "get", "%s/api/list/%s/emails/?ordering=date" % (hk, pkg), None, {}),
        ("API: email detail", None, "get", "%s/api/list/%s/email/%s/" % (hk, data["messages"][0][0], data["messages"][0][1]), None, {}),
        ("API: emails of a sender", None, "get", "%s/api/sender/%s/emails/" % (hk, data["senders"][0]), None, {}),
        ("API: tags", None, "get", hk + "/api/tags/", None, {}),
        ("mbox export of a month", None, "get", "%s/list/%s/export/%s.mbox.gz?start=%s&end=%s" % (hk, pkg, "pkg", data["export"][0], data["export"][1]), None, {}),
    ]


def pick_data():
    """The objects the pages are about, chosen deterministically."""
    from django.db.models import Count
    from hyperkitty.models import Email, MailingList, Thread
    lists = [ml.name for ml in MailingList.objects.order_by("name")]
    lists = sorted(lists, key=lambda n: ["devel", "users", "announce", "packaging"].index(n.split("@")[0]))
    threads = Thread.objects.annotate(n=Count("emails")).order_by("-n", "thread_id")

    def first(qs):      # the first match, or the longest thread (small archives)
        return qs.distinct().order_by("-n", "thread_id").first() or threads[0]
    longest = threads[0]
    tagged = first(threads.filter(category__isnull=False, tags__isnull=False, n__gte=6))
    attach = first(threads.filter(emails__attachments__isnull=False, n__gte=4))
    short = first(threads.filter(n=3))
    th = [(t.mailinglist.name, t.thread_id) for t in (longest, tagged, attach, short)]
    months = []
    for name in (lists[0], lists[3], lists[1]):
        dates = Email.objects.filter(mailinglist__name=name).values_list("date", flat=True).order_by("-date")
        d = dates[min(40, dates.count() - 1)]
        months.append("%d/%02d" % (d.year, d.month))
    msgs = []
    for e in ((Email.objects.filter(thread__thread_id=th[1][1], parent__isnull=False)
               .order_by("date").first()),
              (Email.objects.filter(thread__thread_id=th[2][1], attachments__isnull=False)
               .order_by("date").first()
               or Email.objects.filter(attachments__isnull=False).order_by("date").first())):
        msgs.append((e.mailinglist.name, e.message_id_hash))
    senders = [s["sender__mailman_id"] for s in
               Email.objects.filter(sender__mailman_id__isnull=False)
               .values("sender__mailman_id").annotate(n=Count("id"))
               .order_by("-n", "sender__mailman_id")[:2]]
    dates = Email.objects.filter(mailinglist__name=lists[3]).order_by("-date")
    d = dates[min(30, dates.count() - 1)].date
    export = (d.strftime("%Y-%m-01"), (d + datetime.timedelta(days=31)).strftime("%Y-%m-01"))
    return {"lists": lists, "threads": th, "months": months, "messages": msgs,
            "senders": senders, "export": export}


def read_n1detect(admin, pid):
    with admin.cursor() as c:
        c.execute("""SELECT kind, queryid, parent_queryid, bursts, calls, max_calls,
                            max_distinct_params, max_parent_rows, query, parent_query, sample_params
                     FROM n1_offenders ORDER BY calls DESC, queryid""")
        cols = [d.name for d in c.description]
        offenders = [dict(zip(cols, r)) for r in c.fetchall()]
        c.execute("""SELECT pid, in_progress, queryid, parent_queryid, kind, calls,
                            distinct_params, parent_calls, parent_rows
                     FROM n1_bursts WHERE pid = %s ORDER BY started_at""", (pid,))
        cols = [d.name for d in c.description]
        bursts = [dict(zip(cols, r)) for r in c.fetchall()]
        c.execute("SELECT * FROM n1_info")
        cols = [d.name for d in c.description]
        info = {k: jsonable(v) for k, v in zip(cols, c.fetchone())}
    return offenders, bursts, info


def main():
    out = sys.argv[1]
    pause = int(os.environ.get("RA_PAUSE_MS", "300")) / 1000.0
    only = os.environ.get("RA_PAGES")        # comma-separated page numbers (smoke)
    admin = psycopg2.connect(os.environ["RA_ADMIN_DSN"])
    admin.autocommit = True
    with admin.cursor() as c:
        c.execute("SELECT name, setting FROM pg_settings WHERE name LIKE 'n1detect.%%' ORDER BY name")
        server_settings = dict(c.fetchall())
    trace = {"pages": [], "pause_ms": pause * 1000, "server_settings": server_settings,
             "options": os.environ.get("RA_PGOPTIONS", "")}
    with mailstub.offline_mailman():
        data = pick_data()
        trace["data"] = data
        with connection.cursor() as c:
            c.execute("SELECT pg_backend_pid(), current_setting('n1detect.min_calls'), "
                      "current_setting('n1detect.max_gap')")
            pid, min_calls, max_gap = c.fetchone()
        trace["app_settings"] = {"min_calls": min_calls, "max_gap": max_gap}
        clients = {None: Client(raise_request_exception=False)}
        user = User.objects.get(username="user0")
        clients["user0"] = Client(raise_request_exception=False)
        clients["user0"].force_login(user)
        plist = pages(data)
        for i, (name, uname, method, url, form, headers) in enumerate(plist):
            if only and str(i) not in only.split(","):
                continue
            client = clients[uname]
            with admin.cursor() as c:
                c.execute("SELECT n1_reset()")
            time.sleep(pause)
            rec = Recorder()
            t0 = time.monotonic()
            with connection.execute_wrapper(rec):
                if method == "get":
                    resp = client.get(url, **headers)
                else:
                    resp = client.post(url, form, **headers)
                if getattr(resp, "streaming", False):
                    b"".join(resp.streaming_content)
            t1 = time.monotonic()
            time.sleep(pause)
            offenders, bursts, info = read_n1detect(admin, pid)
            trace["pages"].append({
                "n": i, "name": name, "user": uname, "method": method, "url": url,
                "status": resp.status_code, "t0": t0, "t1": t1,
                "queries": rec.queries, "offenders": jsonable_rows(offenders),
                "bursts": jsonable_rows(bursts), "info": info})
            print("  %2d %-40s %3d %4d queries %6.0f ms" % (
                i, name, resp.status_code, len(rec.queries), (t1 - t0) * 1000), flush=True)
        trace["queryids"] = query_ids(admin, trace["pages"])
    with open(out, "w") as f:
        json.dump(trace, f)


def query_ids(admin, pages):
    """The core query id of each distinct statement the application sent, from
    EXPLAIN VERBOSE (PostgreSQL 14+ prints it when compute_query_id is on):
    the id n1detect reports for it.  Keyed by the SQL psycopg2 sent."""
    ids = {}
    for p in pages:
        for q in p["queries"]:
            sent = q.get("sent")
            if not sent or sent in ids:
                continue
            ids[sent] = None
            head = sent.lstrip().split(None, 1)[0].upper() if sent.strip() else ""
            if head not in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH"):
                continue
            with admin.cursor() as c:
                try:
                    c.execute("EXPLAIN (VERBOSE, FORMAT JSON) " + sent)
                    plan = c.fetchone()[0]
                    ids[sent] = str(plan[0].get("Query Identifier"))
                except psycopg2.Error:
                    pass
    return ids


def jsonable_rows(rows):
    return [{k: jsonable(v) for k, v in r.items()} for r in rows]


if __name__ == "__main__":
    main()
