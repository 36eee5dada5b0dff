"""n1shop: a small Django + Django REST Framework bookshop whose endpoints come
in pairs, naive (with the N+1 an ORM makes by default) and fixed, plus traps
that look like loops but are not N+1s.  test/clients/django_client.py runs
them; test/t/050_clients.pl checks what n1detect reports for each."""
