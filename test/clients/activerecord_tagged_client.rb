#!/usr/bin/ruby
# ActiveRecord 6.1 with marginalia (ruby-marginalia), as a Rails app runs it:
# a real ActionController request (dispatched through Rack) whose queries
# marginalia tags with /*application:Shop,controller:posts,action:index,
# line:...*/, the line being the application's line that made the query.
#
#   activerecord_tagged_client.rb naive|fixed    prints the output as JSON
#
# The naive index lists books and reads each one's author in a loop (the
# line marked LOOP below); the fixed one loads the authors with includes.
require 'active_record'
require 'active_record/connection_adapters/postgresql_adapter'
require 'action_controller'
require 'marginalia'
require 'rack/mock'
require 'json'

class Author < ActiveRecord::Base
end

class Book < ActiveRecord::Base
  belongs_to :author
end

class PostsController < ActionController::Base
  def index
    books = Book.where(id: 1..8).order(:id)
    books = books.includes(:author) if params[:fixed]
    render json: books.map { |b| [b.title, b.author.name] } # LOOP
  end
end

variant = ARGV[0]
unless ARGV.size == 1 && %w[naive fixed].include?(variant)
  warn 'usage: activerecord_tagged_client.rb naive|fixed'
  exit 2
end

# What marginalia's Railtie does in a Rails app, with the line component on.
ActiveRecord::ConnectionAdapters::PostgreSQLAdapter.include(Marginalia::ActiveRecordInstrumentation)
ActionController::Base.include(Marginalia::ActionControllerInstrumentation)
Marginalia.application_name = 'Shop'
Marginalia::Comment.components = [:application, :controller, :action, :line]
# Debian installs gems under /usr/share and /usr/lib, not .../ruby/gems/
# (and a file whose name contains "marginalia" would be ignored too)
Marginalia::Comment.lines_to_ignore = %r{^/usr/|/marginalia}

ActiveRecord::Base.establish_connection(
  adapter: 'postgresql',
  host: ENV['PGHOST'], port: ENV['PGPORT'],
  database: ENV['PGDATABASE'], username: ENV['PGUSER'],
  prepared_statements: true,
  variables: { application_name: "activerecord marginalia #{variant}" }
)
# warm the schema cache, then an idle gap as between two requests
Book.first.author
sleep 0.5

env = Rack::MockRequest.env_for(variant == 'fixed' ? '/posts?fixed=1' : '/posts')
status, _headers, body = PostsController.action(:index).call(env)
raise "status #{status}" unless status == 200
out = +''
body.each { |part| out << part }
puts out
