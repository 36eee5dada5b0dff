"""Models over the tables of test/clients/schema.sql (managed, so Django's test
runner can also create them in a test database of its own)."""
from django.db import models


class Author(models.Model):
    name = models.TextField()

    class Meta:
        app_label = 'n1shop'
        ordering = ['pk']
        db_table = 'authors'


class Publisher(models.Model):
    name = models.TextField()

    class Meta:
        app_label = 'n1shop'
        ordering = ['pk']
        db_table = 'publishers'


class Tag(models.Model):
    name = models.TextField(unique=True)

    class Meta:
        app_label = 'n1shop'
        ordering = ['pk']
        db_table = 'tags'


class Book(models.Model):
    title = models.TextField()
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name='books')
    publisher = models.ForeignKey(Publisher, on_delete=models.CASCADE, related_name='books')
    published = models.IntegerField()
    tags = models.ManyToManyField(Tag, db_table='book_tags', related_name='books')

    class Meta:
        app_label = 'n1shop'
        ordering = ['pk']
        db_table = 'books'


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name='reviews')
    stars = models.IntegerField()
    body = models.TextField()

    class Meta:
        app_label = 'n1shop'
        ordering = ['pk']
        db_table = 'reviews'


class SiteSetting(models.Model):
    key = models.TextField(primary_key=True)
    value = models.TextField()

    class Meta:
        app_label = 'n1shop'
        ordering = ['pk']
        db_table = 'site_settings'
