"""Historical: this migration once added a NOTIFY trigger on django-tasks-db's task table. The engine
no longer uses that package (its own tables are the queue, see 0003), so on a new database it does
nothing; 0003 removes the old trigger where it exists."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("automations", "0001_initial")]

    operations = []
