"""An application's own test suite, run by Django's test runner (which creates
and drops a test database of its own).  With n1detect.action = error set for
the role the tests connect as, the test of the naive endpoint fails with
n1detect's error and the test of the fixed endpoint passes: a test suite in
any language can fail on an N+1 without a detector of its own."""
from django.test import TestCase

from . import views
from .models import Author, Book, Publisher


class BookListSetup:
    @classmethod
    def setUpTestData(cls):
        authors = Author.objects.bulk_create(Author(name='Writer %d' % i) for i in range(8))
        publisher = Publisher.objects.create(name='House')
        Book.objects.bulk_create(Book(title='Title %d' % i, author=a, publisher=publisher, published=2000 + i)
                                 for i, a in enumerate(authors))

    def check_endpoint(self, endpoint):
        data = endpoint()
        self.assertEqual(len(data), 8)
        self.assertEqual(data[3]['author']['name'], 'Writer 3')
        self.assertEqual(data[3]['publisher']['name'], 'House')


class NaiveBookListTest(BookListSetup, TestCase):
    def test_book_list(self):
        self.check_endpoint(views.books_naive)


class FixedBookListTest(BookListSetup, TestCase):
    def test_book_list(self):
        self.check_endpoint(views.books_fixed)


class TwoBooksSetup:
    """Two books: an N+1 of 2 calls, what n1detect.strict = on reports."""
    @classmethod
    def setUpTestData(cls):
        authors = Author.objects.bulk_create(Author(name='Writer %d' % i) for i in range(2))
        publisher = Publisher.objects.create(name='House')
        Book.objects.bulk_create(Book(title='Title %d' % i, author=a, publisher=publisher, published=2000 + i)
                                 for i, a in enumerate(authors))

    def check_endpoint(self, endpoint):
        data = endpoint()
        self.assertEqual(len(data), 2)
        self.assertEqual(data[1]['author']['name'], 'Writer 1')
        self.assertEqual(data[1]['publisher']['name'], 'House')


class StrictNaiveTwoBooksTest(TwoBooksSetup, TestCase):
    def test_book_list(self):
        self.check_endpoint(views.books_naive)


class StrictFixedTwoBooksTest(TwoBooksSetup, TestCase):
    def test_book_list(self):
        self.check_endpoint(views.books_fixed)
