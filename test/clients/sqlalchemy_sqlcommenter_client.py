#!/usr/bin/python3
"""SQLAlchemy 1.4 ORM with sqlcommenter-format comments (issue 10): the
requests of a web application, one after another over one engine (one pooled
connection, as a worker process serves them), each with its own route and
trace id.  A before_cursor_execute listener appends to every statement what
sqlcommenter's SQLAlchemy integration appends:

  /*db_driver='psycopg2',db_framework='sqlalchemy%3A1.4.46',
    route='%2Fauthors%2F%3Cint%3Apage%3E%2Fbooks',
    traceparent='00-<trace id>-<span id>-01'*/

(keys sorted, values URL-encoded and single-quoted; a span id of its own per
statement, as a tracer gives each database span).  The scenarios and models
are sqlalchemy_client.py's.

  sqlalchemy_sqlcommenter_client.py SCENARIO:VARIANT:TRACE_ID ...
      runs each request in turn, prints their outputs as a JSON list
      (an empty TRACE_ID: no traceparent, the route only)
"""
import contextvars
import itertools
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sqlalchemy
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from sqlalchemy_client import SCENARIOS

# The routes of the endpoints, as Flask names them (url_rule.rule).
ROUTES = {'author_books': '/authors/<int:page>/books',
          'book_reviews': '/books/<int:page>/reviews',
          'book_author': '/books/authors'}

# The tags of the request being served (what a framework's request hook and
# an OpenTelemetry span give sqlcommenter).
request_tags = contextvars.ContextVar('request_tags', default=None)
span_ids = itertools.count(0xb7ad6b7169203331)


def install_commenter(engine):
    @event.listens_for(engine, 'before_cursor_execute', retval=True)
    def add_comment(conn, cursor, statement, parameters, context, executemany):
        tags = request_tags.get()
        if tags is None:
            return statement, parameters
        tags = dict(tags)
        trace_id = tags.pop('trace_id')
        if trace_id:
            tags['traceparent'] = '00-%s-%016x-01' % (trace_id, next(span_ids))
        comment = ','.join("%s='%s'" % (k, urllib.parse.quote(v, safe=''))
                           for k, v in sorted(tags.items()))
        # psycopg2 reads %% as % when it is given parameters, even none
        if parameters is not None:
            comment = comment.replace('%', '%%')
        return '%s /*%s*/' % (statement, comment), parameters


def serve(engine, scenario, variant, trace_id):
    """One request: its own session, its own tags."""
    token = request_tags.set({
        'db_driver': 'psycopg2',
        'db_framework': 'sqlalchemy:%s' % sqlalchemy.__version__,
        'route': ROUTES[scenario],
        'trace_id': trace_id,
    })
    try:
        with Session(engine) as session:
            out = SCENARIOS[scenario](session, variant == 'fixed')
            session.commit()
        return out
    finally:
        request_tags.reset(token)


def main(argv):
    requests = [arg.split(':') for arg in argv[1:]]
    if not requests or any(len(r) != 3 or r[0] not in SCENARIOS or r[1] not in ('naive', 'fixed')
                           for r in requests):
        sys.stderr.write(__doc__)
        return 2
    # an empty URL part lets libpq take host, port, user and database from PG*
    engine = create_engine('postgresql+psycopg2://',
                           connect_args={'application_name': 'sqlalchemy sqlcommenter'})
    install_commenter(engine)
    print(json.dumps([serve(engine, *r) for r in requests]))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
