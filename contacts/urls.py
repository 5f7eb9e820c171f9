from django.urls import path

from . import views

app_name = "contacts"

urlpatterns = [
    path("", views.import_list, name="imports"),
    path("contacts/", views.contact_list, name="contacts"),
    path("<int:import_id>/errors.csv", views.import_errors, name="import_errors"),
]
