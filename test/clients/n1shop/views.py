"""Endpoints in pairs (naive, fixed) and traps.

Each entry of SCENARIOS maps a variant name to a function returning the
endpoint's output as plain data; django_client.py prints it as JSON, so the
test can check that the fixed endpoint returns exactly what the naive one did.
DRF endpoints go through a real request cycle (APIRequestFactory, view,
serializer, JSON renderer)."""
import json

from django.db import transaction
from django.db.models import Count
from rest_framework import generics
from rest_framework.test import APIRequestFactory

from . import serializers as s
from .models import Author, Book, SiteSetting, Tag

PAGE = 8          # rows per list endpoint: above n1detect.min_calls (5)


def call(view_class, **initkwargs):
    """Runs one GET through DRF and returns the decoded JSON body."""
    request = APIRequestFactory().get('/')
    response = view_class.as_view(**initkwargs)(request)
    response.render()
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def list_view(serializer, queryset, context=None):
    class View(generics.ListAPIView):
        serializer_class = serializer
        pagination_class = None

        def get_queryset(self):
            return queryset()

        def get_serializer_context(self):
            ctx = super().get_serializer_context()
            ctx.update(context() if context else {})
            return ctx
    return lambda: call(View)


# -- pairs ------------------------------------------------------------------

# forward foreign keys: book -> author, book -> publisher (siblings of one loop)
books_naive = list_view(s.BookSerializer, lambda: Book.objects.all()[:PAGE])
books_fixed = list_view(s.BookSerializer,
                        lambda: Book.objects.select_related('author', 'publisher')[:PAGE])

# reverse foreign key: author -> books
author_books_naive = list_view(s.AuthorBooksSerializer, lambda: Author.objects.all()[:PAGE])
author_books_fixed = list_view(s.AuthorBooksSerializer,
                               lambda: Author.objects.prefetch_related('books')[:PAGE])

# a per-row .count()
author_count_naive = list_view(s.AuthorCountSerializer, lambda: Author.objects.all()[:PAGE])
author_count_fixed = list_view(s.AuthorAnnotatedCountSerializer,
                               lambda: Author.objects.annotate(book_count=Count('books')).order_by('pk')[:PAGE])

# many-to-many
book_tags_naive = list_view(s.BookTagsSerializer, lambda: Book.objects.all()[:PAGE])
book_tags_fixed = list_view(s.BookTagsSerializer,
                            lambda: Book.objects.prefetch_related('tags')[:PAGE])

# nested loops: authors -> books of each -> reviews of each book
deep_naive = list_view(s.AuthorDeepSerializer, lambda: Author.objects.all()[:6])
deep_fixed = list_view(s.AuthorDeepSerializer,
                       lambda: Author.objects.prefetch_related('books__reviews')[:6])


# .iterator(): a server-side cursor, FETCH FORWARD chunk_size rows at a time,
# the per-row queries in between the fetches.  In autocommit Django declares
# the cursor WITH HOLD; inside atomic() it is an ordinary cursor whose query
# runs a chunk per FETCH.
def _export(queryset):
    return [[b.title, b.author.name] for b in queryset.iterator(chunk_size=3)]


def iterator_naive():
    return _export(Book.objects.filter(id__lte=12))


def iterator_fixed():
    return _export(Book.objects.filter(id__lte=12).select_related('author'))


def iterator_atomic_naive():
    with transaction.atomic():
        return _export(Book.objects.filter(id__lte=12))


def iterator_atomic_fixed():
    with transaction.atomic():
        return _export(Book.objects.filter(id__lte=12).select_related('author'))


# -- traps ------------------------------------------------------------------

# The same query with the same parameters once per row: a duplicate, not an
# N+1 (the fix is to run it once, not to batch it).
duplicate_naive = list_view(s.BookPriceSerializer, lambda: Book.objects.all()[:PAGE])
duplicate_fixed = list_view(s.BookPriceSerializer, lambda: Book.objects.all()[:PAGE],
                            context=lambda: {'currency': SiteSetting.objects.get(key='currency').value})


# An import job: find-or-create one author per incoming record.  The keys
# come from the input, not from the rows of an earlier query.
def find_or_create():
    incoming = ['Author 3', 'Author 5', 'Author 7', 'Author 9', 'Author 11',
                'Author 2', 'New author A', 'New author B']
    out = []
    for name in incoming:
        author, created = Author.objects.get_or_create(name=name)
        out.append([name, created])
    return out


# A paginated export: keyset pages, the tags of each page batch-loaded with
# one IN-list query (prefetch_related) per page.  The page query and the
# batch loader run once per page: neither is the other's N+1.
def paginated_prefetch():
    out, last = [], 0
    while True:
        page = list(Book.objects.filter(id__gt=last).prefetch_related('tags')[:6])
        if not page:
            return out
        out.extend([b.id, [t.name for t in b.tags.all()]] for b in page)
        last = page[-1].id


SCENARIOS = {
    'books': {'naive': books_naive, 'fixed': books_fixed},
    'author_books': {'naive': author_books_naive, 'fixed': author_books_fixed},
    'author_count': {'naive': author_count_naive, 'fixed': author_count_fixed},
    'book_tags': {'naive': book_tags_naive, 'fixed': book_tags_fixed},
    'deep': {'naive': deep_naive, 'fixed': deep_fixed},
    'iterator': {'naive': iterator_naive, 'fixed': iterator_fixed},
    'iterator_atomic': {'naive': iterator_atomic_naive, 'fixed': iterator_atomic_fixed},
    'duplicate': {'naive': duplicate_naive, 'fixed': duplicate_fixed},
    'find_or_create': {'trap': find_or_create},
    'paginated_prefetch': {'trap': paginated_prefetch},
}
