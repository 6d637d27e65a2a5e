"""
A live load page for staff: per channel, the depth, the age of the oldest
message, the rates in and out and the ChannelFull count, plotted over the
last minutes. It reads the same figures as "manage.py channelstats" (the
layer's stats()), which the page polls as JSON.

    # urls.py
    path("admin/channels/", include("django_fork.channels.loadpage")),

Only active staff see it: others are sent to the admin's login page.
"""

import time

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import path

from django_fork.channels.exceptions import ChannelError
from django_fork.channels.layers import DEFAULT_CHANNEL_LAYER_ALIAS, channel_layers

app_name = "channel_load"

#: The figures plotted, in order: (field, title).
CHARTS = [
    ("depth", "Depth (messages waiting)"),
    ("oldest_age", "Oldest message (seconds)"),
    ("in_rate", "In (messages/s)"),
    ("out_rate", "Out (messages/s)"),
    ("full", "ChannelFull (refused sends)"),
]
#: Seconds of history the page keeps, and between two polls.
HISTORY = 300
INTERVAL = 2


def load_figures(alias):
    """Return {channel: figures} for the layer, as channelstats reads them."""
    layer = channel_layers[alias]
    layer.require_extension("stats")
    return layer.stats_sync()


@staff_member_required
def load_page(request):
    return render(
        request,
        "channels/load.html",
        {
            **admin.site.each_context(request),
            "title": "Channel load",
            "charts": CHARTS,
            "history": HISTORY,
            "interval": INTERVAL,
            "alias": request.GET.get("layer", DEFAULT_CHANNEL_LAYER_ALIAS),
        },
    )


@staff_member_required
def load_data(request):
    alias = request.GET.get("layer", DEFAULT_CHANNEL_LAYER_ALIAS)
    try:
        figures = load_figures(alias)
    except ChannelError as e:
        return JsonResponse({"error": str(e)}, status=503)
    except Exception as e:
        # An unknown alias or a layer without the stats extension.
        return JsonResponse({"error": str(e)}, status=400)
    fields = [field for field, _ in CHARTS]
    return JsonResponse(
        {
            "time": time.time(),
            "channels": {
                channel: {field: values.get(field) or 0 for field in fields}
                for channel, values in figures.items()
            },
        }
    )


urlpatterns = [
    path("load/", load_page, name="page"),
    path("load/data/", load_data, name="data"),
]
