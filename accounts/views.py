"""Sign-up and activation pages."""
from django.contrib import messages
from django.shortcuts import redirect, render

from jobs.exceptions import JobQueueUnavailable
from jobs.throttling import launch_wait, too_many

from . import services
from .forms import SignupForm


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
        return render(request, "registration/signup_done.html", {"email": email})
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
