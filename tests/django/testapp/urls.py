from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("sjti.django.urls")),
    path("api/me", views.me),
    path("api/me-stateless", views.me_stateless),
]
