from django.apps import AppConfig


class CoordinatorSiteConfig(AppConfig):
    name = "coordinator_site"
    verbose_name = "Node"

    def ready(self):
        from django.db.backends.signals import connection_created

        from coordinator_site import checks  # noqa: F401 - registers the system checks
        from coordinator_site.exact import register_sqlite_functions

        connection_created.connect(register_sqlite_functions, dispatch_uid="coordinator_exact_sum")
