from api.views import me
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("sjti.django.urls")),  # simplejwt's URLs + logout/ logout-all/
    path("api/me/", me),
]
