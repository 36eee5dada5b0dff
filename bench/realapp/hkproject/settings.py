"""
Minimal Django project serving HyperKitty (Debian's python3-django-hyperkitty)
for bench/realapp: derived from the package's example settings
(/usr/share/doc/python3-django-hyperkitty/examples/settings.py) with what the
harness needs.  It must never talk to anything outside this machine: Mailman's
REST API is replaced by an offline stub in drive.py (as HyperKitty's own tests
do), email goes to a locmem backend.

The database comes from the environment (RA_PGHOST, RA_PGPORT, RA_DB, RA_PGUSER
and RA_PGOPTIONS, e.g. "-c n1detect.min_calls=2"); RA_WORK is a scratch
directory (whoosh index, static files).
"""
import os

from django.contrib.messages import constants as messages

WORK = os.environ.get("RA_WORK", "/tmp/realapp")
SECRET_KEY = "bench-realapp-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
SITE_ID = 1
TIME_ZONE = "UTC"
USE_TZ = True
USE_I18N = True
USE_L10N = True
LANGUAGE_CODE = "en-us"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

MAILMAN_REST_API_URL = "http://localhost:9"   # never reached: stubbed
MAILMAN_REST_API_USER = "restadmin"
MAILMAN_REST_API_PASS = "restpass"
MAILMAN_ARCHIVER_KEY = "SecretArchiverAPIKey"
MAILMAN_ARCHIVER_FROM = ("127.0.0.1", "::1")

INSTALLED_APPS = (
    "hyperkitty",
    "django_mailman3",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.sites",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_gravatar",
    "compressor",
    "haystack",
    "django_extensions",
    "django_q",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
)

MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_mailman3.middleware.TimezoneMiddleware",
)

ROOT_URLCONF = "hkproject.urls"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {
        "context_processors": [
            "django.template.context_processors.debug",
            "django.template.context_processors.i18n",
            "django.template.context_processors.media",
            "django.template.context_processors.static",
            "django.template.context_processors.tz",
            "django.template.context_processors.request",
            "django.contrib.auth.context_processors.auth",
            "django.contrib.messages.context_processors.messages",
            "django_mailman3.context_processors.common",
            "hyperkitty.context_processors.common",
        ],
    },
}]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",   # psycopg2
        "NAME": os.environ.get("RA_DB", "hyperkitty"),
        "USER": os.environ.get("RA_PGUSER", "hyperkitty"),
        "HOST": os.environ.get("RA_PGHOST", "/tmp"),
        "PORT": os.environ.get("RA_PGPORT", "5432"),
        "OPTIONS": {"options": os.environ.get("RA_PGOPTIONS", ""),
                    "application_name": "hyperkitty"},
        # one connection for the whole run, as a worker with persistent
        # connections (CONN_MAX_AGE) keeps it
        "CONN_MAX_AGE": None,
    }
}

# No cache: every page computes what a cold memcached would (HyperKitty
# caches per-thread and per-list aggregates); also makes the pages independent
# of the order they are visited in.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}

STATIC_ROOT = os.path.join(WORK, "static")
STATIC_URL = "/static/"
STATICFILES_FINDERS = (
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "compressor.finders.CompressorFinder",
)
COMPRESS_ENABLED = False
COMPRESS_PRECOMPILERS = ()

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "hk_root"
LOGOUT_URL = "account_logout"
MESSAGE_TAGS = {messages.ERROR: "danger"}
AUTHENTICATION_BACKENDS = (
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
)
ACCOUNT_AUTHENTICATION_METHOD = "username_email"
ACCOUNT_EMAIL_REQUIRED = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins

HAYSTACK_CONNECTIONS = {
    "default": {
        "ENGINE": "haystack.backends.whoosh_backend.WhooshEngine",
        "PATH": os.path.join(WORK, "whoosh_index"),
    },
}
# the index is built once after seeding (update_index); pages only read it
HAYSTACK_SIGNAL_PROCESSOR = "haystack.signals.BaseSignalProcessor"

Q_CLUSTER = {"timeout": 300, "retry": 600, "orm": "default", "sync": True,
             "log_level": "ERROR"}

# archive received through hyperkitty.lib.incoming without asking Mailman
HYPERKITTY_BATCH_MODE = True
FILTER_VHOST = False
SHOW_INACTIVE_LISTS_DEFAULT = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler", "level": "ERROR"}},
    "root": {"handlers": ["console"], "level": "ERROR"},
}

# as in Debian's example settings
REST_FRAMEWORK = {
    "PAGE_SIZE": 10,
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "DEFAULT_FILTER_BACKENDS": ("rest_framework.filters.OrderingFilter",),
}
