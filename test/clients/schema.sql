-- The bookshop every client workload runs against (test/t/050_clients.pl loads it).
-- Django's models (n1shop/models.py), SQLAlchemy's and ActiveRecord's classes
-- map these tables; ids are deterministic so every client sees the same data.
CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE publishers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE books (
    id serial PRIMARY KEY,
    title text NOT NULL,
    author_id int NOT NULL REFERENCES authors,
    publisher_id int NOT NULL REFERENCES publishers,
    published int NOT NULL
);
CREATE INDEX ON books (author_id);
CREATE TABLE reviews (
    id serial PRIMARY KEY,
    book_id int NOT NULL REFERENCES books,
    stars int NOT NULL,
    body text NOT NULL
);
CREATE INDEX ON reviews (book_id);
CREATE TABLE tags (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE book_tags (
    id serial PRIMARY KEY,
    book_id int NOT NULL REFERENCES books,
    tag_id int NOT NULL REFERENCES tags,
    UNIQUE (book_id, tag_id)
);
CREATE TABLE site_settings (key text PRIMARY KEY, value text NOT NULL);

-- 12 authors with 4 books each, 4 publishers, 2 reviews and 2 tags per book.
INSERT INTO authors (name) SELECT 'Author ' || g FROM generate_series(1, 12) g;
INSERT INTO publishers (name) SELECT 'Publisher ' || g FROM generate_series(1, 4) g;
INSERT INTO books (title, author_id, publisher_id, published)
    SELECT 'Book ' || g, (g - 1) / 4 + 1, g % 4 + 1, 1990 + g % 30 FROM generate_series(1, 48) g;
INSERT INTO reviews (book_id, stars, body)
    SELECT b, s, 'Review ' || s || ' of book ' || b FROM generate_series(1, 48) b, generate_series(3, 4) s;
INSERT INTO tags (name) SELECT 'tag' || g FROM generate_series(1, 6) g;
INSERT INTO book_tags (book_id, tag_id)
    SELECT b, t FROM generate_series(1, 48) b, LATERAL (VALUES (b % 6 + 1), ((b + 2) % 6 + 1)) v(t);
INSERT INTO site_settings VALUES ('currency', 'EUR'), ('locale', 'en');
ANALYZE;
