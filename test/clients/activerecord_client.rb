#!/usr/bin/ruby
# ActiveRecord (ruby-activerecord, ruby-pg) workloads on the bookshop of
# schema.sql, against the server named by the libpq environment.  The pg
# adapter uses prepared statements with $1 parameters by default.
#
#   activerecord_client.rb SCENARIO VARIANT    prints the output as JSON
#
#   book_author   belongs_to: each book's author (naive), includes(:author) (fixed)
#   author_books  has_many: each author's books (naive), includes(:books) (fixed)
require 'active_record'
require 'json'

class Author < ActiveRecord::Base
  has_many :books, -> { order(:id) }
end

class Book < ActiveRecord::Base
  belongs_to :author
end

SCENARIOS = {
  'book_author' => lambda do |fixed|
    books = Book.where(id: 1..8).order(:id)
    books = books.includes(:author) if fixed
    books.map { |b| [b.title, b.author.name] }
  end,
  'author_books' => lambda do |fixed|
    authors = Author.order(:id).limit(8)
    authors = authors.includes(:books) if fixed
    authors.map { |a| [a.name, a.books.map(&:title)] }
  end,
}

scenario, variant = ARGV
unless ARGV.size == 2 && SCENARIOS.key?(scenario) && %w[naive fixed].include?(variant)
  warn 'usage: activerecord_client.rb book_author|author_books naive|fixed'
  exit 2
end

ActiveRecord::Base.establish_connection(
  adapter: 'postgresql',
  host: ENV['PGHOST'], port: ENV['PGPORT'],
  database: ENV['PGDATABASE'], username: ENV['PGUSER'],
  prepared_statements: true,
  variables: { application_name: "activerecord #{scenario} #{variant}" }
)
# An application process loads its schema cache (column lists, type map, the
# list of tables) on its first request, long before the ones that matter.  Do
# the same, then leave an idle gap longer than n1detect.max_gap (100 ms), as
# between two requests: otherwise the cold schema queries (a pg_class listing
# of 11 rows run between the list and the loop) compete to be the parent.
Book.first.author
Author.first.books.load
sleep 0.5

puts JSON.generate(SCENARIOS[scenario].call(variant == 'fixed'))
