# Site rules belong to a deployment: a rollback brings its rules back, a
# preview serves with its own. Every deployment of a site was served with the
# site's rules until now, so each keeps them. (``apps`` is typed Any: its
# models are the historical ones, which the type checker does not know.)

from typing import Any

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def site_rules_to_deployments(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Site = apps.get_model("django_assetcache", "Site")
    Deployment = apps.get_model("django_assetcache", "Deployment")
    db = schema_editor.connection.alias
    for site_id, rules in Site.objects.using(db).exclude(rules="").values_list("pk", "rules"):
        Deployment.objects.using(db).filter(site_id=site_id).update(rules=rules)


def live_rules_to_sites(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Site = apps.get_model("django_assetcache", "Site")
    Deployment = apps.get_model("django_assetcache", "Deployment")
    db = schema_editor.connection.alias
    live = Site.objects.using(db).filter(live_deployment__isnull=False)
    for site_id, deployment_id in live.values_list("pk", "live_deployment_id"):
        rules = Deployment.objects.using(db).filter(pk=deployment_id).values_list("rules", flat=True).first()
        Site.objects.using(db).filter(pk=site_id).update(rules=rules or "")


class Migration(migrations.Migration):

    dependencies = [
        ('django_assetcache', '0012_deploy_metrics'),
    ]

    operations = [
        migrations.AddField(
            model_name='deployment',
            name='rules',
            field=models.TextField(blank=True, editable=False, help_text='The _redirects and _headers this deployment serves with, compiled (JSON).', verbose_name='compiled rules'),
        ),
        migrations.RunPython(site_rules_to_deployments, live_rules_to_sites),
        migrations.RemoveField(
            model_name='site',
            name='rules',
        ),
    ]
