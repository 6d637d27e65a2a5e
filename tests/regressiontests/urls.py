"""
Root URLconf of the test suite (ROOT_URLCONF = "urls" in runtests.py).

Test apps that need views bring their own URLconf and point to it with
@override_settings(ROOT_URLCONF=...).
"""

urlpatterns = []
