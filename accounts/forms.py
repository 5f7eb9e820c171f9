"""The sign-up form."""
from django import forms
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.models import User


class SignupForm(BaseUserCreationForm):
    """A new account: an email address (which is also the username) and a password, twice.

    It never says whether an address has an account already (accounts.services.user_register
    answers the same either way), so sign-up cannot be used to find out who is registered.
    """

    email = forms.EmailField(help_text="The activation link is sent here; you sign in with it.")

    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self):
        return self.cleaned_data["email"].strip().lower()
