#!/usr/bin/python3
"""psycopg 3 workloads: parameters bound on the server (extended protocol),
against the server named by the libpq environment.

  psycopg_client.py SCENARIO VARIANT    prints the output as JSON

Pairs (naive / fixed):
  unnamed     per-row queries as unnamed statements (prepare=False)
  prepared    per-row queries as a named prepared statement (prepare=True)
  auto        psycopg's default: unnamed for the first prepare_threshold (5)
              executions, then prepared automatically
  cursor      a server-side (named) cursor whose FETCHes drive the per-row
              queries
The fixed variant of each loads the children in one query with = ANY(%s).

Traps (variant "trap"): nothing in them is an N+1.
  keyset      a batch job: keyset pagination, one UPDATE per page
  same_shape  two loads of one shape with different parameters, at
              n1detect.min_calls = 2
  health      SELECT 1 health checks (they read no table)
  duplicate   one lookup repeated with the same bound parameter (a duplicate)
"""
import json
import sys

import psycopg

CHILD = 'SELECT name FROM authors WHERE id = %s'


def parents(cur):
    cur.execute('SELECT id, title, author_id FROM books WHERE id %% 4 = 1 ORDER BY id LIMIT %s', [8])
    return cur.fetchall()


def per_row(conn, prepare):
    with conn.cursor() as cur:
        books = parents(cur)
        out = []
        for _id, title, author_id in books:
            cur.execute(CHILD, [author_id], prepare=prepare)
            out.append([title, cur.fetchone()[0]])
        return out


def batched(conn):
    with conn.cursor() as cur:
        books = parents(cur)
        cur.execute('SELECT id, name FROM authors WHERE id = ANY(%s)', [[b[2] for b in books]])
        names = dict(cur.fetchall())
        return [[title, names[author_id]] for _id, title, author_id in books]


def cursor_naive(conn):
    out = []
    with conn.transaction():
        with conn.cursor(name='books_export') as books, conn.cursor() as cur:
            books.itersize = 3
            books.execute('SELECT id, title, author_id FROM books WHERE id %% 4 = 1 ORDER BY id LIMIT %s', [8])
            for _id, title, author_id in books:
                cur.execute(CHILD, [author_id])
                out.append([title, cur.fetchone()[0]])
    return out


def cursor_fixed(conn):
    out = []
    with conn.transaction():
        with conn.cursor(name='books_export') as books:
            books.itersize = 3
            books.execute('SELECT b.id, b.title, a.name FROM books b JOIN authors a ON a.id = b.author_id'
                          ' WHERE b.id %% 4 = 1 ORDER BY b.id LIMIT %s', [8])
            out = [[title, name] for _id, title, name in books]
    return out


def keyset(conn):
    pages = []
    last = 0
    with conn.cursor() as cur:
        while True:
            cur.execute('SELECT id FROM books WHERE id > %s ORDER BY id LIMIT %s', [last, 8])
            ids = [r[0] for r in cur.fetchall()]
            if not ids:
                return pages
            cur.execute('UPDATE books SET published = published WHERE id = ANY(%s)', [ids])
            pages.append(len(ids))
            last = ids[-1]


def same_shape(conn):
    with conn.cursor() as cur:
        cur.execute('SET n1detect.min_calls = 2')
        out = []
        for author in (3, 7):
            cur.execute('SELECT title FROM books WHERE author_id = %s ORDER BY id', [author])
            out.append([r[0] for r in cur.fetchall()])
        return out


def health(conn):
    with conn.cursor() as cur:
        for _ in range(20):
            cur.execute('SELECT 1')
            cur.fetchone()
    return 'ok'


def duplicate(conn):
    with conn.cursor() as cur:
        books = parents(cur)
        out = []
        for _id, title, _author in books:
            cur.execute('SELECT value FROM site_settings WHERE key = %s', ['currency'])
            out.append([title, cur.fetchone()[0]])
        return out


SCENARIOS = {
    'unnamed': {'naive': lambda c: per_row(c, False), 'fixed': batched},
    'prepared': {'naive': lambda c: per_row(c, True), 'fixed': batched},
    'auto': {'naive': lambda c: per_row(c, None), 'fixed': batched},
    'cursor': {'naive': cursor_naive, 'fixed': cursor_fixed},
    'keyset': {'trap': keyset},
    'same_shape': {'trap': same_shape},
    'health': {'trap': health},
    'duplicate': {'trap': duplicate},
}


def main(argv):
    if len(argv) != 3 or argv[2] not in SCENARIOS.get(argv[1], {}):
        sys.stderr.write(__doc__)
        return 2
    scenario, variant = argv[1], argv[2]
    with psycopg.connect(application_name='psycopg %s %s' % (scenario, variant),
                         autocommit=True) as conn:
        print(json.dumps(SCENARIOS[scenario][variant](conn)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
