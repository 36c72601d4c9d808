package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// A trigger that silently skips deletes (BEFORE DELETE returning NULL)
// leaves rows that match selected and not deleted. A batch looks at the
// same range once more (a concurrent update may have moved the rows); when
// that deletes nothing either, the batch fails, saying so, instead of
// looking again forever (the job stops Interrupted, nothing is claimed).
// Once the trigger is gone, the job resumed from its last cursor deletes
// every matching row.
func TestDeleteSkippedByTrigger(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.exec(`CREATE TABLE t (id bigint PRIMARY KEY, user_id text NOT NULL, created_at timestamptz NOT NULL)`)
	e.exec(`INSERT INTO t SELECT g, 'u' || (g % 2), now() - interval '10 days' FROM generate_series(1, 60) g`)
	e.exec(`CREATE FUNCTION keep_some() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF OLD.id % 3 = 0 THEN RETURN NULL; END IF; RETURN OLD; END $$`)
	e.exec(`CREATE TRIGGER keep_some BEFORE DELETE ON t FOR EACH ROW EXECUTE FUNCTION keep_some()`)
	d := e.driver()
	c := coll("t")
	c.IdentityFields = map[string]string{"user_id": "user_id"}
	cutoff := time.Now()
	c.TimestampField = "created_at"
	for _, tc := range []struct {
		name string
		op   datastore.Operation
	}{
		{"by subject", datastore.Operation{Collection: c, Delete: true, Subjects: map[string][]string{"user_id": {"u0"}}, BatchSize: 7}},
		{"by age along the key", datastore.Operation{Collection: c, Delete: true, Cutoff: &cutoff, BatchSize: 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.exec(`CREATE OR REPLACE TRIGGER keep_some BEFORE DELETE ON t FOR EACH ROW EXECUTE FUNCTION keep_some()`)
			cursor, deleted := "", int64(0)
			var err error
			for batches := 0; ; batches++ {
				if batches > 40 {
					t.Fatal("still batching after 40 batches: the skipped rows are looked at forever")
				}
				var b datastore.Batch
				b, err = d.Execute(ctx, tc.op, cursor)
				if err != nil {
					break
				}
				deleted += b.Affected
				cursor = b.Cursor
				if b.Done {
					break
				}
			}
			if !errors.Is(err, datastore.ErrInvalid) {
				t.Fatalf("want an ErrInvalid naming the skipped rows, got %v", err)
			}
			if kept := e.int(`SELECT count(*) FROM t WHERE id % 3 = 0 AND ($1 OR user_id = 'u0')`, tc.op.Subjects == nil); kept == 0 {
				t.Fatal("the trigger kept nothing: the test proves nothing")
			}
			e.exec(`DROP TRIGGER keep_some ON t`)
			r := drain(t, d, tc.op, cursor, 40)
			if left := count(t, d, tc.op); left != 0 {
				t.Fatalf("%d matching rows left after resuming without the trigger (%d deleted before, %d after)", left, deleted, r.affected)
			}
		})
	}
}
