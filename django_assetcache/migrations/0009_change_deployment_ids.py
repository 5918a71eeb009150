# A publish's change names the deployment it made live and the one before, so
# processes keep the entries of the paths it did not touch.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_assetcache', '0008_deployments'),
    ]

    operations = [
        migrations.AddField(
            model_name='change',
            name='deployment_id',
            field=models.BigIntegerField(blank=True, null=True, verbose_name='deployment id'),
        ),
        migrations.AddField(
            model_name='change',
            name='previous_id',
            field=models.BigIntegerField(blank=True, null=True, verbose_name='previous deployment id'),
        ),
    ]
