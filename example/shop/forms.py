from django import forms

PRODUCTS = {
    "mug": ("Pony mug", 12),
    "shirt": ("Channel T-shirt", 25),
    "sticker": ("Sticker pack", 4),
}


class OrderForm(forms.Form):
    name = forms.CharField(max_length=100)
    email = forms.EmailField()
    product = forms.ChoiceField(
        choices=[(key, "%s ($%d)" % item) for key, item in PRODUCTS.items()]
    )
    quantity = forms.IntegerField(min_value=1, max_value=99, initial=1)
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def total(self):
        """Return the order's total price; call only once the form is valid."""
        return PRODUCTS[self.cleaned_data["product"]][1] * self.cleaned_data["quantity"]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts several files (see Django's upload docs)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single_file_clean = super().clean
        if isinstance(data, (list, tuple)) and data:
            return [single_file_clean(item, initial) for item in data]
        # No file chosen: the single-file clean() enforces required.
        cleaned = single_file_clean(data or None, initial)
        return [cleaned] if cleaned else []


class UploadForm(forms.Form):
    files = MultipleFileField(help_text="Choose one or more files.")
