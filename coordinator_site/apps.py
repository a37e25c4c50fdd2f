from django.apps import AppConfig


class CoordinatorSiteConfig(AppConfig):
    name = "coordinator_site"
    verbose_name = "Node"

    def ready(self):
        from coordinator_site import checks  # noqa: F401 - registers the system checks
