"""
Seeds a HyperKitty archive for bench/realapp, deterministically (one seed,
dates relative to today's midnight UTC), through HyperKitty's own code: every
email goes through hyperkitty.lib.incoming.add_to_list, the path Mailman's
archiver takes (threading by In-Reply-To/References, senders, attachments
scrubbed by django_mailman3), thread order and depth as HyperKitty's
periodic job computes them, then votes, tags, categories, favorites and last
views through the models, and the whoosh search index is built.

It owns the data only: it never reads n1detect and never drives pages.
Run by bench/realapp/run with the environment of hkproject/settings.py.
"""
import datetime
import os
import random
import sys
from email.message import EmailMessage
from email.utils import format_datetime

import django

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hkproject.settings")
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

import mailstub  # noqa: E402

SEED = int(os.environ.get("RA_SEED", "20261206"))
SCALE = float(os.environ.get("RA_SCALE", "1"))   # --quick uses less

LISTS = [
    # name, display name, threads at SCALE 1
    ("devel@lists.example.org", "Developers", 120),
    ("users@lists.example.org", "Users", 100),
    ("announce@lists.example.org", "Announcements", 20),
    ("packaging@lists.example.org", "Packaging", 60),
]
FIRST = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi",
         "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert",
         "Sybil", "Trent", "Victor", "Walter", "Yolanda"]
LAST = ["Smith", "Jones", "Garcia", "Müller", "Rossi", "Dubois", "Novak",
        "Kowalski", "Tanaka", "Silva"]
WORDS = ("build fails on arm64 with the new compiler release crash when "
         "importing archives mailbox migration proposal documentation patch "
         "review python dependency upgrade packaging policy security update "
         "announce meeting minutes website translation search index slow "
         "database timeout config default theme login error question").split()
TAGS = ["bug", "question", "patch", "release", "security", "docs", "ci",
        "packaging", "performance", "ui", "search", "help-wanted", "meeting",
        "proposal", "wontfix"]
CATEGORIES = ["question", "agreed", "fixed", "not-fixed", "help"]
USERS = 8          # Django accounts (the first senders)
SENDERS = 40


def sentence(rng, lo, hi):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def body(rng):
    paras = []
    for _ in range(rng.randint(1, 4)):
        paras.append(sentence(rng, 15, 60).capitalize() + ".")
    return "\n\n".join(paras) + "\n"


def main():
    from hyperkitty.lib.incoming import add_to_list
    from hyperkitty.models import (
        Email, Favorite, LastView, MailingList, Sender, Tag, Tagging, Thread,
        ThreadCategory, Vote)
    from allauth.account.models import EmailAddress

    rng = random.Random(SEED)
    anchor = datetime.datetime.now(datetime.timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0)

    people = []
    for i in range(SENDERS):
        first = FIRST[i % len(FIRST)]
        last = LAST[(i * 7) % len(LAST)]
        addr = "%s.%s%d@example.%s" % (first.lower(), "x" if i < 20 else "y", i,
                                        "org" if i % 3 else "com")
        people.append(("%s %s" % (first, last), addr))
    # a few senders post much more than others
    weights = [1.0 / (1 + i) ** 0.8 for i in range(SENDERS)]

    with mailstub.offline_mailman():
        for name, display, _ in LISTS:
            MailingList.objects.update_or_create(
                name=name, defaults={
                    "display_name": display,
                    "list_id": name.replace("@", "."),
                    "description": "The %s list" % display.lower(),
                    "subject_prefix": "[%s] " % display.lower()})
        total_emails = 0
        for li, (name, display, nthreads) in enumerate(LISTS):
            nthreads = max(3, int(nthreads * SCALE))
            for t in range(nthreads):
                start = anchor - datetime.timedelta(
                    days=rng.randint(0, 240), minutes=rng.randint(0, 1439))
                if t < nthreads // 8:       # some very recent activity
                    start = anchor - datetime.timedelta(
                        days=rng.randint(0, 6), minutes=rng.randint(0, 1439))
                subject = sentence(rng, 3, 9).capitalize()
                nreplies = min(int(rng.expovariate(1 / 4.0)), 25)
                msgs = []   # (message-id, references) of this thread
                when = start
                for k in range(nreplies + 1):
                    who = rng.choices(range(SENDERS), weights)[0]
                    msg = EmailMessage()
                    mid = "<%d.%d.%d@%s>" % (li, t, k, "mail.example.org")
                    msg["Message-Id"] = mid
                    msg["From"] = "%s <%s>" % people[who]
                    msg["To"] = name
                    msg["Date"] = format_datetime(when)
                    if k == 0:
                        msg["Subject"] = subject
                        refs = []
                    else:
                        parent = rng.choice(msgs[-4:])
                        msg["Subject"] = "Re: " + subject
                        msg["In-Reply-To"] = parent[0]
                        refs = parent[1] + [parent[0]]
                        msg["References"] = " ".join(refs)
                    text = body(rng)
                    if k > 0 and rng.random() < 0.5:
                        text = "> " + sentence(rng, 8, 20) + "\n\n" + text
                    msg.set_content(text)
                    if rng.random() < 0.06:
                        msg.add_attachment(
                            ("log line %d\n" % rng.randint(1, 999)) * rng.randint(5, 80),
                            filename="build-%d.log" % rng.randint(1, 999))
                    if rng.random() < 0.02:
                        msg.add_attachment(bytes(rng.getrandbits(8) for _ in range(600)),
                                           maintype="image", subtype="png",
                                           filename="screenshot.png")
                    add_to_list(name, msg)
                    msgs.append((mid, refs))
                    total_emails += 1
                    when = when + datetime.timedelta(minutes=rng.randint(5, 3000))

        # thread order and depth, as HyperKitty's thread_order_depth job
        # computes them (thread pages sort replies by them)
        from hyperkitty.lib.analysis import compute_thread_order_and_depth
        for th in Thread.objects.order_by("id"):
            compute_thread_order_and_depth(th)

        # senders known to Mailman (user profile pages use mailman ids)
        for i, s in enumerate(Sender.objects.order_by("address")):
            if rng.random() < 0.8:
                s.mailman_id = "%032x" % rng.getrandbits(128)
                s.save()

        with transaction.atomic():
            users = []
            for i in range(USERS):
                fullname, addr = people[i]
                u = User.objects.create_user(
                    "user%d" % i, addr, "pw", first_name=fullname.split()[0],
                    last_name=fullname.split()[1])
                EmailAddress.objects.create(user=u, email=addr, verified=True,
                                            primary=True)
                users.append(u)
            emails = list(Email.objects.order_by("id").values_list("id", flat=True))
            threads = list(Thread.objects.order_by("id"))
            # in bulk: HyperKitty's vote signals only rebuild cached values,
            # and the application runs without a cache
            Vote.objects.bulk_create([
                Vote(email_id=eid, user=u, value=1 if rng.random() < 0.8 else -1)
                for u in users
                for eid in rng.sample(emails, min(len(emails), int(120 * SCALE) + 5))])
            tags = [Tag.objects.create(name=n) for n in TAGS]
            for th in rng.sample(threads, len(threads) // 3):
                for tag in rng.sample(tags, rng.randint(1, 3)):
                    Tagging.objects.create(thread=th, tag=tag,
                                           user=rng.choice(users))
            cats = [ThreadCategory.objects.create(name=n, color="#%06x" % rng.getrandbits(24))
                    for n in CATEGORIES]
            for th in rng.sample(threads, len(threads) // 4):
                th.category = rng.choice(cats)
                th.save()
            for u in users:
                for th in rng.sample(threads, min(len(threads), 12)):
                    Favorite.objects.create(thread=th, user=u)
                for th in rng.sample(threads, min(len(threads), 25)):
                    LastView.objects.create(thread=th, user=u)
        call_command("update_index", verbosity=0)
        print("seed: %d lists, %d threads, %d emails, %d senders, %d votes, %d attachments"
              % (MailingList.objects.count(), Thread.objects.count(),
                 Email.objects.count(), Sender.objects.count(),
                 Vote.objects.count(),
                 __import__("hyperkitty.models", fromlist=["Attachment"]).Attachment.objects.count()))


if __name__ == "__main__":
    main()
