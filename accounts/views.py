"""Sign-up and activation pages."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from jobs.exceptions import JobQueueUnavailable
from jobs.throttling import launch_wait, too_many

from . import services
from .forms import ApiTokenForm, SignupForm
from .models import ApiToken


def signup_view(request):
    """Create an inactive account; the activation email goes out from a worker."""
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if (wait := launch_wait(request)) is not None:  # each sign-up sends an email
            form.add_error(None, too_many(wait))
            return render(request, "registration/signup.html", {"form": form}, status=429)
        email = form.cleaned_data["email"]
        try:
            services.user_register(email=email, password=form.cleaned_data["password1"])
        except JobQueueUnavailable as exc:
            form.add_error(None, str(exc))
            return render(request, "registration/signup.html", {"form": form}, status=503)
        # The same answer whether or not the address had an account.
        return render(request, "registration/signup_done.html", {
            "email": email, "printed": settings.EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend"})
    return render(request, "registration/signup.html", {"form": form})


def activate_view(request, token: str):
    """Open the link from the activation email."""
    try:
        services.user_activate(token=token)
    except services.ActivationFailed as exc:
        messages.error(request, str(exc))
        return redirect("accounts:signup")
    messages.success(request, "Your account is active. Sign in.")
    return redirect("login")


@login_required
def token_list(request):
    """Your API tokens: create one (shown once, here), see when each was last used, revoke."""
    form = ApiTokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        _, created = services.api_token_create(user=request.user, name=form.cleaned_data["name"])
        form = ApiTokenForm()
    return render(request, "accounts/token_list.html", {
        "form": form, "created": created, "tokens": ApiToken.objects.filter(user=request.user),
    })


@login_required
@require_POST
def token_revoke(request, token_id: int):
    """Delete one of your tokens: requests carrying it are refused from now on."""
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    token.delete()
    messages.success(request, f"Revoked the token {token.prefix}… ({token.name}).")
    return redirect("accounts:tokens")
