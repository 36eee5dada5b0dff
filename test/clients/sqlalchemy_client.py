#!/usr/bin/python3
"""SQLAlchemy (ORM, psycopg2 driver: literal SQL) workloads on the bookshop of
schema.sql, against the server named by the libpq environment.

  sqlalchemy_client.py SCENARIO VARIANT    prints the endpoint's output as JSON

Lazy relationships ("select" loading, SQLAlchemy's default) issue one query per
parent row; the fixed variants load them with selectinload / joinedload.  A
many-to-one lazy load is skipped when the target is already in the session's
identity map, so book -> author is exercised over books of distinct authors.
"""
import json
import os
import sys

from sqlalchemy import Column, ForeignKey, Integer, Text, create_engine
from sqlalchemy.orm import Session, declarative_base, joinedload, relationship, selectinload

Base = declarative_base()


class Author(Base):
    __tablename__ = 'authors'
    id = Column(Integer, primary_key=True)
    name = Column(Text, nullable=False)
    books = relationship('Book', back_populates='author', order_by='Book.id')


class Book(Base):
    __tablename__ = 'books'
    id = Column(Integer, primary_key=True)
    title = Column(Text, nullable=False)
    author_id = Column(Integer, ForeignKey('authors.id'), nullable=False)
    publisher_id = Column(Integer, nullable=False)
    published = Column(Integer, nullable=False)
    author = relationship('Author', back_populates='books')
    reviews = relationship('Review', back_populates='book', order_by='Review.id')


class Review(Base):
    __tablename__ = 'reviews'
    id = Column(Integer, primary_key=True)
    book_id = Column(Integer, ForeignKey('books.id'), nullable=False)
    stars = Column(Integer, nullable=False)
    body = Column(Text, nullable=False)
    book = relationship('Book', back_populates='reviews')


def author_books(session, fixed):
    q = session.query(Author).order_by(Author.id).limit(8)
    if fixed:
        q = q.options(selectinload(Author.books))
    return [[a.name, [b.title for b in a.books]] for a in q]


def book_reviews(session, fixed):
    q = session.query(Book).order_by(Book.id).limit(8)
    if fixed:
        q = q.options(joinedload(Book.reviews))
    return [[b.title, [r.body for r in b.reviews]] for b in q]


def book_author(session, fixed):
    # the first book of each author: every lazy load misses the identity map
    q = session.query(Book).filter(Book.id % 4 == 1).order_by(Book.id)
    if fixed:
        q = q.options(joinedload(Book.author))
    return [[b.title, b.author.name] for b in q]


SCENARIOS = {'author_books': author_books, 'book_reviews': book_reviews,
             'book_author': book_author}


def main(argv):
    if len(argv) != 3 or argv[1] not in SCENARIOS or argv[2] not in ('naive', 'fixed'):
        sys.stderr.write(__doc__)
        return 2
    scenario, variant = argv[1], argv[2]
    # an empty URL part lets libpq take host, port, user and database from PG*
    engine = create_engine('postgresql+psycopg2://',
                           connect_args={'application_name': 'sqlalchemy %s %s' % (scenario, variant)})
    with Session(engine) as session:
        out = SCENARIOS[scenario](session, variant == 'fixed')
        session.commit()
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
