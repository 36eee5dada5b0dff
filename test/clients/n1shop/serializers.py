"""DRF serializers: nested the way real APIs nest them.  The same serializer
serves the naive and the fixed endpoint; only the queryset differs, except
for the per-row count, where the fix reads an annotation."""
from rest_framework import serializers

from .models import Author, Book, Publisher, Review, SiteSetting, Tag


class AuthorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Author
        fields = ['id', 'name']


class PublisherSerializer(serializers.ModelSerializer):
    class Meta:
        model = Publisher
        fields = ['id', 'name']


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ['id', 'name']


class ReviewSerializer(serializers.ModelSerializer):
    class Meta:
        model = Review
        fields = ['id', 'stars', 'body']


# forward foreign keys: two siblings per row (author and publisher)
class BookSerializer(serializers.ModelSerializer):
    author = AuthorSerializer()
    publisher = PublisherSerializer()

    class Meta:
        model = Book
        fields = ['id', 'title', 'author', 'publisher']


# many-to-many
class BookTagsSerializer(serializers.ModelSerializer):
    tags = TagSerializer(many=True)

    class Meta:
        model = Book
        fields = ['id', 'title', 'tags']


class BookReviewsSerializer(serializers.ModelSerializer):
    reviews = ReviewSerializer(many=True)

    class Meta:
        model = Book
        fields = ['id', 'title', 'reviews']


# reverse foreign key
class BookTitleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Book
        fields = ['id', 'title']


class AuthorBooksSerializer(serializers.ModelSerializer):
    books = BookTitleSerializer(many=True)

    class Meta:
        model = Author
        fields = ['id', 'name', 'books']


# two levels: authors -> books -> reviews
class AuthorDeepSerializer(serializers.ModelSerializer):
    books = BookReviewsSerializer(many=True)

    class Meta:
        model = Author
        fields = ['id', 'name', 'books']


# a per-row .count()
class AuthorCountSerializer(serializers.ModelSerializer):
    book_count = serializers.SerializerMethodField()

    def get_book_count(self, author):
        return author.books.count()

    class Meta:
        model = Author
        fields = ['id', 'name', 'book_count']


class AuthorAnnotatedCountSerializer(serializers.ModelSerializer):
    book_count = serializers.IntegerField()

    class Meta:
        model = Author
        fields = ['id', 'name', 'book_count']


# a per-row lookup of the same setting (the same query, same parameters)
class BookPriceSerializer(serializers.ModelSerializer):
    currency = serializers.SerializerMethodField()

    def get_currency(self, book):
        cached = self.context.get('currency')
        if cached is not None:
            return cached
        return SiteSetting.objects.get(key='currency').value

    class Meta:
        model = Book
        fields = ['id', 'title', 'currency']
