"""URLs of the bench/realapp project: HyperKitty as the Debian example mounts it."""
from django.conf.urls import include
from django.urls import path

urlpatterns = [
    path("hyperkitty/", include("hyperkitty.urls")),
    path("", include("django_mailman3.urls")),
    path("accounts/", include("allauth.urls")),
]
