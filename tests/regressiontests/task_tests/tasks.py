import time

try:
    from django.tasks import task
except ImportError:
    # Django 5.2: the django-tasks backport.
    from django_tasks import task

calls = []


@task()
def resize(width, height):
    calls.append(("resize", width, height))
    return {"area": width * height}


@task()
def nap(seconds, label):
    time.sleep(seconds)
    calls.append(("nap", label))


@task()
async def shout(text):
    return text.upper()


@task()
def broken():
    raise ValueError("task bug")


@task(takes_context=True)
def attempt(context):
    return context.attempt
