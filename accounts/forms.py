"""The sign-up form."""
from django import forms
from django.contrib.auth.forms import AuthenticationForm, BaseUserCreationForm
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


class SignInForm(AuthenticationForm):
    """Django's sign-in form, which also says when the password is right but the account still
    awaits its activation link (Django's says "enter a correct username and password")."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Please enter a correct email address and password. Both may be case-sensitive.",
        "not_activated": "This account is not active yet: open the activation link we emailed you, then sign in.",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "Email address"  # accounts are email addresses (SignupForm)
        self.fields["username"].widget.attrs.update(type="email", autocomplete="email")

    def clean(self):
        try:
            return super().clean()
        except forms.ValidationError:
            username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
            user = User.objects.filter(username=username, is_active=False).first() if username else None
            if user is not None and not hasattr(user, "activation") and user.check_password(password or ""):
                raise forms.ValidationError(self.error_messages["not_activated"], code="not_activated") from None
            raise


class ApiTokenForm(forms.Form):
    """A new API token: only its name is chosen."""

    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'nightly import script'.")
