from django import forms


class ContactImportForm(forms.Form):
    """A CSV file to import."""

    file = forms.FileField(help_text="A UTF-8 CSV file whose first line names its columns: email, name, phone.")
