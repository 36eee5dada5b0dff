#!/usr/bin/python3
"""Django with sqlcommenter-format comments (issue 10): requests go through
Django's full request cycle (django.test.Client: middleware, URL resolver,
DRF view, serializer), and a middleware adds to each query, through
connection.execute_wrapper, the comment google's sqlcommenter Django
middleware adds: /*controller='...',framework='django%3A4.1.x',
route='api/books/naive/',traceparent='00-<trace>-<span>-01'*/ (keys
sorted, values URL-encoded and single-quoted).

  django_sqlcommenter_client.py naive|fixed TRACE_ID    prints the output as JSON
"""
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TRACE_ID = None


class SqlCommenter:
    """What sqlcommenter's middleware does for every request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.db import connection
        with connection.execute_wrapper(QueryWrapper(request)):
            return self.get_response(request)


class QueryWrapper:
    def __init__(self, request):
        self.request = request

    def __call__(self, execute, sql, params, many, context):
        import django
        match = self.request.resolver_match
        tags = {
            'controller': match.view_name if match else '',
            'framework': 'django:%s' % django.get_version(),
            'route': match.route if match else '',
            'traceparent': '00-%s-%016x-01' % (TRACE_ID, 0xb7ad6b7169203331),
        }
        comment = ','.join("%s='%s'" % (k, urllib.parse.quote(v, safe=''))
                           for k, v in sorted(tags.items()) if v)
        # with parameters (even none) psycopg2 reads % as a placeholder
        if params is not None:
            comment = comment.replace('%', '%%')
        return execute('%s /*%s*/' % (sql, comment), params, many, context)


def setup():
    import django
    from django.conf import settings
    settings.configure(
        DEBUG=False,
        SECRET_KEY='n1detect-tests',
        USE_TZ=True,
        ALLOWED_HOSTS=['testserver'],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[__name__ + '.SqlCommenter'],
        INSTALLED_APPS=['rest_framework', 'n1shop'],
        DATABASES={'default': {
            'ENGINE': 'django.db.backends.postgresql',
            'NAME': os.environ.get('PGDATABASE', 'postgres'),
            'USER': os.environ.get('PGUSER', ''),
            'HOST': os.environ.get('PGHOST', ''),
            'PORT': os.environ.get('PGPORT', ''),
            'OPTIONS': {'application_name': 'django sqlcommenter'},
        }},
        REST_FRAMEWORK={
            'DEFAULT_AUTHENTICATION_CLASSES': [],
            'DEFAULT_PERMISSION_CLASSES': [],
            'UNAUTHENTICATED_USER': None,
            'DEFAULT_RENDERER_CLASSES': ['rest_framework.renderers.JSONRenderer'],
        },
        DEFAULT_AUTO_FIELD='django.db.models.AutoField',
    )
    django.setup()


urlpatterns = []


def main(argv):
    global TRACE_ID
    if len(argv) != 3 or argv[1] not in ('naive', 'fixed'):
        sys.stderr.write(__doc__)
        return 2
    TRACE_ID = argv[2]
    setup()
    from django.urls import path
    from rest_framework import generics
    from n1shop import serializers as s
    from n1shop.models import Book

    class BookList(generics.ListAPIView):
        serializer_class = s.BookSerializer
        pagination_class = None
        queryset = Book.objects.all()[:8]

    class BookListFixed(BookList):
        queryset = Book.objects.select_related('author', 'publisher')[:8]

    urlpatterns.extend([
        path('api/books/naive/', BookList.as_view(), name='book_list'),
        path('api/books/fixed/', BookListFixed.as_view(), name='book_list_fixed'),
    ])
    from django.test import Client
    response = Client().get('/api/books/%s/' % argv[1])
    assert response.status_code == 200, response.content
    print(json.dumps(json.loads(response.content)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
