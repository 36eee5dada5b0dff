#!/usr/bin/python3
"""Runs the n1shop Django/DRF workloads against the server named by the libpq
environment (PGHOST, PGPORT, PGDATABASE, PGUSER).  psycopg2 sends literal SQL
(the simple protocol): parameters are part of the query text.

  django_client.py run SCENARIO VARIANT   one endpoint; prints its output as JSON
  django_client.py test TEST_LABEL...     Django's test runner on n1shop.tests
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def setup(application_name):
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY='n1detect-tests',
        USE_TZ=True,
        INSTALLED_APPS=['rest_framework', 'n1shop'],
        DATABASES={'default': {
            'ENGINE': 'django.db.backends.postgresql',
            'NAME': os.environ.get('PGDATABASE', 'postgres'),
            'USER': os.environ.get('PGUSER', ''),
            'HOST': os.environ.get('PGHOST', ''),
            'PORT': os.environ.get('PGPORT', ''),
            'OPTIONS': {'application_name': application_name},
            # the test runner's database (created and dropped by the runner)
            'TEST': {'NAME': os.environ.get('N1_DJANGO_TEST_DB', 'test_n1shop')},
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


def main(argv):
    if len(argv) == 4 and argv[1] == 'run':
        scenario, variant = argv[2], argv[3]
        setup('django %s %s' % (scenario, variant))
        from n1shop.views import SCENARIOS
        print(json.dumps(SCENARIOS[scenario][variant]()))
        return 0
    if len(argv) >= 3 and argv[1] == 'test':
        setup('django tests')
        from django.test.utils import get_runner
        from django.conf import settings
        runner = get_runner(settings)(verbosity=2, interactive=False)
        failures = runner.run_tests(argv[2:])
        return 1 if failures else 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
