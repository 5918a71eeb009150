# Deployments: every publish an immutable manifest; the existing files become each site's first one.

import django.db.models.deletion
import django.utils.timezone
import django_assetcache.validators
from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def existing_files_as_deployments(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Each site's assets become its first deployment, live."""
    Site = apps.get_model("django_assetcache", "Site")
    Deployment = apps.get_model("django_assetcache", "Deployment")
    Asset = apps.get_model("django_assetcache", "Asset")
    db = schema_editor.connection.alias
    clashing = sorted(Site.objects.using(db).filter(subdomain__contains="--").values_list("subdomain", flat=True))
    if clashing:
        raise RuntimeError(
            "subdomains may no longer contain '--' (kept for preview hosts): rename "
            + ", ".join(clashing)
            + " first"
        )
    now = django.utils.timezone.now()
    for site in Site.objects.using(db).filter(assets__isnull=False).distinct().order_by("pk"):
        files = Asset.objects.using(db).filter(site=site)
        deployment = Deployment.objects.using(db).create(
            site=site,
            key=django_assetcache.validators.new_deployment_key(),
            created_at=now,
            live_at=now,
            created_by="migration",
            source="existing files",
            state="live",
            summary={"files": files.count()},
        )
        files.update(deployment=deployment)
        Site.objects.using(db).filter(pk=site.pk).update(live_deployment=deployment)
    if schema_editor.connection.vendor == "postgresql":
        # The constraints checked now, not at the commit: the table is
        # altered next, which PostgreSQL refuses with pending trigger events.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def deployments_as_files(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Back to one row per path: each site keeps its live deployment's rows."""
    Site = apps.get_model("django_assetcache", "Site")
    Asset = apps.get_model("django_assetcache", "Asset")
    db = schema_editor.connection.alias
    for site in Site.objects.using(db).order_by("pk"):
        files = Asset.objects.using(db).filter(site=site)
        if site.live_deployment_id is not None:
            files = files.exclude(deployment_id=site.live_deployment_id)
        files.delete()


class Migration(migrations.Migration):

    dependencies = [
        ('django_assetcache', '0007_traffic_and_heartbeats'),
    ]

    operations = [
        migrations.CreateModel(
            name='Deployment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(default=django_assetcache.validators.new_deployment_key, editable=False, max_length=8, unique=True, verbose_name='id')),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name='created')),
                ('created_by', models.CharField(blank=True, max_length=150, verbose_name='created by')),
                ('source', models.CharField(blank=True, max_length=1024, verbose_name='source')),
                ('message', models.TextField(blank=True, verbose_name='message')),
                ('git_commit', models.CharField(blank=True, max_length=64, verbose_name='git commit')),
                ('git_branch', models.CharField(blank=True, max_length=255, verbose_name='git branch')),
                ('summary', models.JSONField(blank=True, default=dict, verbose_name='summary')),
                ('state', models.CharField(choices=[('draft', 'draft'), ('live', 'live'), ('superseded', 'superseded'), ('expired', 'expired')], default='draft', max_length=16, verbose_name='state')),
                ('live_at', models.DateTimeField(blank=True, null=True, verbose_name='made live')),
            ],
            options={
                'verbose_name': 'deployment',
                'verbose_name_plural': 'deployments',
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='DeploymentAlias',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=50, validators=[django_assetcache.validators.validate_alias], verbose_name='name')),
            ],
            options={
                'verbose_name': 'deployment alias',
                'verbose_name_plural': 'deployment aliases',
                'ordering': ['name'],
            },
        ),
        migrations.RemoveConstraint(
            model_name='asset',
            name='assetcache_asset_site_path',
        ),
        migrations.AlterField(
            model_name='change',
            name='kind',
            field=models.CharField(choices=[('publish', 'publish'), ('deploy', 'deploy'), ('settings', 'settings'), ('domains', 'domains'), ('delete', 'delete'), ('purge', 'purge'), ('prune', 'prune'), ('access', 'access')], max_length=16, verbose_name='kind'),
        ),
        migrations.AddField(
            model_name='deployment',
            name='site',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deployments', to='django_assetcache.site'),
        ),
        migrations.AddField(
            model_name='asset',
            name='deployment',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='assets', to='django_assetcache.deployment'),
        ),
        migrations.AddField(
            model_name='site',
            name='live_deployment',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='django_assetcache.deployment', verbose_name='live deployment'),
        ),
        migrations.RunPython(existing_files_as_deployments, deployments_as_files),
        migrations.AlterField(
            model_name='asset',
            name='deployment',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='assets', to='django_assetcache.deployment'),
        ),
        migrations.AddConstraint(
            model_name='asset',
            constraint=models.UniqueConstraint(fields=('deployment', 'path'), name='assetcache_asset_deployment_path'),
        ),
        migrations.AddField(
            model_name='deploymentalias',
            name='deployment',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='aliases', to='django_assetcache.deployment'),
        ),
        migrations.AddField(
            model_name='deploymentalias',
            name='site',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='aliases', to='django_assetcache.site'),
        ),
        migrations.AddConstraint(
            model_name='deploymentalias',
            constraint=models.UniqueConstraint(fields=('site', 'name'), name='assetcache_alias_site_name'),
        ),
    ]
