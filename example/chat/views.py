import datetime

from django import forms
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from .consumers import ROOM_MAX_LENGTH
from .tasks import announce


class NameForm(forms.Form):
    name = forms.CharField(max_length=30)


def room(request, room):
    """The room page: pick a name (kept in the session), then chat."""
    if len(room) > ROOM_MAX_LENGTH:
        refusal = "A room name has at most %d characters; this one has %d." % (
            ROOM_MAX_LENGTH,
            len(room),
        )
        return render(
            request, "chat/room.html", {"room": room, "refusal": refusal}, status=400
        )
    if request.method == "POST":
        form = NameForm(request.POST)
        if form.is_valid():
            request.session["chat_name"] = form.cleaned_data["name"]
            return redirect(request.path)
    else:
        form = NameForm(initial={"name": request.session.get("chat_name", "")})
    return render(
        request,
        "chat/room.html",
        {"room": room, "form": form, "name": request.session.get("chat_name")},
    )


@require_POST
def announcement(request, room):
    """Enqueue a task that announces to the room one second from now."""
    text = request.POST.get("text", "").strip() or "Hello from a background task"
    run_after = timezone.now() + datetime.timedelta(seconds=1)
    announce.using(run_after=run_after).enqueue(room, text)
    return redirect("chat:room", room=room)
