"""PostgreSQL: a trigger refuses any insert, update or delete of a snapshot in a sealed period.

The score worker already leaves sealed periods alone (late scores); this guard makes that hold
for any other writer too, a bug included. Voiding a checkpoint removes its seal first.
"""

from django.db import migrations

GUARD = """
CREATE OR REPLACE FUNCTION scoring_snapshot_sealed_guard() RETURNS trigger AS $$
DECLARE
    starts timestamptz[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        starts := ARRAY[NEW.period_start];
    ELSIF TG_OP = 'UPDATE' THEN
        starts := ARRAY[OLD.period_start, NEW.period_start];
    ELSE
        starts := ARRAY[OLD.period_start];
    END IF;
    IF EXISTS (
        SELECT 1 FROM scoring_snapshotseal s, unnest(starts) AS t(start)
        WHERE s.period_start <= t.start AND t.start < s.period_end
    ) THEN
        RAISE EXCEPTION 'snapshot of a sealed period cannot change (model %, period %)',
            COALESCE(NEW.model_id, OLD.model_id), COALESCE(NEW.period_start, OLD.period_start)
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS scoring_snapshot_sealed ON scoring_snapshot;
CREATE TRIGGER scoring_snapshot_sealed BEFORE INSERT OR UPDATE OR DELETE ON scoring_snapshot
    FOR EACH ROW EXECUTE FUNCTION scoring_snapshot_sealed_guard();
"""

UNGUARD = """
DROP TRIGGER IF EXISTS scoring_snapshot_sealed ON scoring_snapshot;
DROP FUNCTION IF EXISTS scoring_snapshot_sealed_guard();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GUARD, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNGUARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("scoring", "0003_late_scores_and_seals")]

    operations = [migrations.RunPython(forwards, backwards)]
