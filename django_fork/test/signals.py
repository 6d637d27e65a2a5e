from django.core.signals import setting_changed
from django.dispatch import receiver


@receiver(setting_changed)
def reset_channel_layers(*, setting, **kwargs):
    if setting == "CHANNEL_LAYERS":
        from django_fork.channels.layers import channel_layers

        channel_layers.reset()
