// Package erasure_test is the property test of erasure and retention over
// generated schemas, on real PostgreSQL and MariaDB: random schemas of 5-12
// tables with foreign keys (several paths to a table, diamonds, shared
// lookup tables, nullable and NOT NULL keys, composite keys, tables keyed
// by a second identity), random subjects, legal holds and Dataset choices.
// Each case runs the same sequence the controllers run, through the same
// packages: plan (internal/erasure), preflight and resolve
// (internal/engine), seal, then batches through the driver, interrupted
// and resumed by a fresh driver at a random batch. It then checks by SQL,
// against an oracle computed from the generated data alone:
//   - no record of another subject changed (over-erasure 0);
//   - no record a subject owns through owning references left (under-erasure 0);
//   - every held record present and unchanged;
//   - no run ever fails after changing data: it stops before acting (and
//     then nothing changed, and a record outside it really refers to one it
//     would delete) or it completes, with counts equal to the dry run's.
//
// LETHE_PROPERTY_CASES sets the number of PostgreSQL cases (default 200;
// make fuzz-erasure runs more), LETHE_PROPERTY_SEED the first seed; a
// failure prints the seed to replay with LETHE_PROPERTY_SEED=<seed>
// LETHE_PROPERTY_CASES=1.
package erasure_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/engine"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/testharness"
)

func TestMain(m *testing.M) { testharness.Main(m) }

// refusedPlans counts erasures refused while planning (cases run one at a
// time).
var refusedPlans int

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestErasurePropertyPostgres(t *testing.T) {
	runProperty(t, postgresStore(t), envInt("LETHE_PROPERTY_CASES", 200))
}

func TestErasurePropertyMariaDB(t *testing.T) {
	runProperty(t, mariadbStore(t), max(envInt("LETHE_PROPERTY_CASES", 200)/5, 1))
}

// tally counts how cases ended, so a run that stops everything (or checks
// nothing) fails instead of passing vacuously.
type tally struct {
	erased, erasureStopped, purged, purgeStopped int
	refused                                      int // erasures refused while planning
}

func runProperty(t *testing.T, st *store, cases int) {
	first := uint64(envInt("LETHE_PROPERTY_SEED", 1))
	var got tally
	refusedPlans = 0
	for seed := first; seed < first+uint64(cases); seed++ {
		if err := runCase(t, st, seed, &got); err != nil {
			t.Fatalf("seed %d (replay: LETHE_PROPERTY_SEED=%d LETHE_PROPERTY_CASES=1 go test ./test/erasure -run %s): %v",
				seed, seed, t.Name(), err)
		}
	}
	got.refused = refusedPlans
	t.Logf("%s: %d cases: %d erasures completed, %d stopped before any change (%d refused while planning); %d retention runs completed, %d stopped before any change",
		st.kind, cases, got.erased, got.erasureStopped, got.refused, got.purged, got.purgeStopped)
	if cases >= 20 && (got.erased < cases/5 || got.purged < cases/5) {
		t.Errorf("too few cases ran to completion to prove anything: %+v", got)
	}
}

func runCase(t *testing.T, st *store, seed uint64, got *tally) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	s := generate(rng)
	fail := func(err error) error { return fmt.Errorf("%w\nschema:\n%s", err, describe(s)) }
	if err := st.reset(ctx); err != nil {
		return err
	}
	if err := st.create(ctx, s); err != nil {
		return fail(err)
	}
	ds, err := discover(ctx, st, s)
	if err != nil {
		return fail(err)
	}
	// One or two subjects erased together (coalesced), one or two others
	// under a legal hold.
	perm := rng.Perm(subjects)
	erase := []int{perm[0] + 1}
	if rng.IntN(2) == 0 {
		erase = append(erase, perm[1]+1)
	}
	held := []int{perm[2] + 1}
	if rng.IntN(2) == 0 {
		held = append(held, perm[3]+1)
	}
	stopped, err := eraseCase(ctx, st, s, ds, erase, held, rng)
	if err != nil {
		return fail(fmt.Errorf("erasing subjects %v (holds on %v): %w", erase, held, err))
	}
	if stopped {
		got.erasureStopped++
	} else {
		got.erased++
	}
	// A retention run on the data as the erasure left it.
	stopped, err = retentionCase(ctx, st, s, ds, held, rng)
	if err != nil {
		return fail(fmt.Errorf("retention run (holds on %v): %w", held, err))
	}
	if stopped {
		got.purgeStopped++
	} else {
		got.purged++
	}
	return nil
}

// discover fills status.foreignKeys as the Dataset controller does: every
// foreign key between two collections, PointsTo unless a declared owning
// reference covers its single column.
func discover(ctx context.Context, st *store, s *schema) (*retentionv1.Dataset, error) {
	ds := s.dataset("prop", "store")
	d, err := st.open(ctx)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	for i := range ds.Spec.Collections {
		c := &ds.Spec.Collections[i]
		dc, err := engine.ToDriver(st.kind, c)
		if err != nil {
			return nil, err
		}
		info, err := d.Describe(ctx, dc)
		if err != nil {
			return nil, err
		}
		for _, fk := range info.ForeignKeys {
			own := retentionv1.OwnershipPointsTo
			for _, r := range c.References {
				if len(fk.Columns) == 1 && string(r.Field) == fk.Columns[0] && r.Ownership == retentionv1.OwnershipOwned {
					own = retentionv1.OwnershipOwned
				}
			}
			ds.Status.ForeignKeys = append(ds.Status.ForeignKeys, retentionv1.DiscoveredReference{Collection: string(c.Name),
				Field: strings.Join(fk.Columns, ","), TargetCollection: fk.RefTable, TargetField: strings.Join(fk.RefColumns, ","), Constraint: fk.Name, Ownership: own})
		}
	}
	return &ds, nil
}

// subjectsReader serves the subjects Secret of a job, as the API server would.
func subjectsReader(name string, ids map[string][]string) client.Reader {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "prop", Name: name,
		Labels: map[string]string{retentionv1.LabelSecretConsent: "true"}}, Data: map[string][]byte{}}
	for k, vs := range ids {
		sec.Data[k] = []byte(strings.Join(vs, "\n"))
	}
	return fake.NewClientBuilder().WithObjects(sec).Build()
}

func holdOn(subs []int) []retentionv1.LegalHold {
	h := retentionv1.LegalHold{}
	h.Name, h.Namespace = "hold", "prop"
	for typ, vs := range identities(subs) {
		for _, v := range vs {
			h.Spec.Subjects = append(h.Spec.Subjects, retentionv1.SubjectIdentity{Type: retentionv1.IdentityType(typ), Value: v})
		}
	}
	// Derived, as the LegalHold controller marks a hold once it has looked
	// (nothing to derive here: the hold names both identity types).
	h.Status.Conditions = []metav1.Condition{{Type: retentionv1.ConditionIdentitiesDerived, Status: metav1.ConditionTrue, Reason: "IdentitiesDerived", ObservedGeneration: h.Generation}}
	return []retentionv1.LegalHold{h}
}

// eraseCase erases the subjects as a DeletionRequest and its PurgeJob do.
func eraseCase(ctx context.Context, st *store, s *schema, ds *retentionv1.Dataset, erase, held []int, rng *rand.Rand) (bool, error) {
	ids := identities(erase)
	before, err := st.snapshot(ctx, s)
	if err != nil {
		return false, err
	}
	// Plan (DeletionRequest): every owning path, children first.
	steps, err := erasure.Plan([]retentionv1.Dataset{*ds}, erasure.Request{Types: map[string]bool{"user_id": true, "email": true}})
	if errors.Is(err, erasure.ErrInvalid) {
		// Refused while planning (a request stalls with the reason): the
		// stores were not even read.
		refusedPlans++
		return true, stoppedRightly(ctx, st, s, before, err.Error(), nil, nil)
	}
	if err != nil {
		return false, err
	}
	if len(steps) != 1 {
		return false, fmt.Errorf("%d planned Datasets", len(steps))
	}
	step := &steps[0]
	d, err := st.open(ctx)
	if err != nil {
		return false, err
	}
	defer func() { d.Close() }()
	// Preflight (DeletionRequest): stop, or fall back, before any change.
	msg, err := engine.Preflight(ctx, d.(datastore.Referrers), step, st.kind, ids)
	if err != nil {
		return false, err
	}
	actions := map[string]retentionv1.Action{}
	for _, op := range step.Ops {
		actions[string(op.Collection)] = op.Action
	}
	owned := s.owned(ids)
	sel, anon := erasureSelection(s, owned, actions)
	if msg != "" {
		return true, stoppedRightly(ctx, st, s, before, msg, sel, anon)
	}
	if b := oracleBlocked(s, before, sel, anon); b != "" {
		return false, fmt.Errorf("the preflight passed, but %s", b)
	}

	// The PurgeJob: resolve, count (the dry run), preflight, seal.
	job := &retentionv1.PurgeJob{}
	job.Name, job.Namespace = "erase", "prop"
	job.Spec = retentionv1.PurgeJobSpec{Mode: retentionv1.ModeEnforce, Operations: step.Ops, BatchSize: int32(1 + rng.IntN(4)),
		SubjectsSecretRef: &retentionv1.SecretReference{Name: "subjects"}}
	in := engine.Inputs{Reader: subjectsReader("subjects", ids), Dataset: ds, StoreType: st.kind, Holds: holdOn(held), Now: s.now}
	res, err := engine.Resolve(ctx, job, in)
	if err != nil {
		return false, err
	}
	counts, stoppedMsg, err := dryRun(ctx, d, res)
	if err != nil {
		return false, err
	}
	if stoppedMsg != "" {
		return true, stoppedRightly(ctx, st, s, before, stoppedMsg, sel, anon)
	}
	sealed := map[string][][]string{}
	for _, r := range res {
		k, err := d.(datastore.Sealer).Keys(ctx, r.Op, 100000)
		if err != nil {
			return false, err
		}
		sealed[r.Op.Collection.Name] = append(sealed[r.Op.Collection.Name], k...)
	}
	in.Sealed = sealed
	affected, err := execute(ctx, st, &d, job, in, rng)
	if err != nil {
		return false, fmt.Errorf("failed after the preflight passed (data may have changed): %w", err)
	}
	if !slices.Equal(affected, counts) {
		return false, fmt.Errorf("the run affected %v records per operation, the dry run counted %v", affected, counts)
	}
	// Verification (DeletionRequest): nothing identifiable left.
	for _, op := range step.Ops {
		o, err := engine.SubjectOperation(ds, st.kind, op, ids)
		if err != nil {
			return false, err
		}
		if n, err := d.Count(ctx, o); err != nil || n != 0 {
			return false, fmt.Errorf("verification: %d records of %s still identify the subjects (%w)", n, op.Collection, err)
		}
	}
	after, err := st.snapshot(ctx, s)
	if err != nil {
		return false, err
	}
	heldRows := s.owned(identities(held))
	for ti, t := range s.tables {
		act, planned := actions[t.name]
		for _, r := range t.rows {
			k := r.key(t)
			old, ok := before[t.name][k]
			if !ok {
				continue // gone in an earlier step of this case
			}
			now, present := after[t.name][k]
			mine := owned[ti][r] && planned
			switch {
			case mine && heldRows[ti][r]:
				return false, fmt.Errorf("generator: row %s %s owned by an erased and a held subject", t.name, k)
			case mine && act == retentionv1.ActionDelete:
				if present {
					return false, fmt.Errorf("under-erasure: %s %s (owner %d) still there", t.name, k, r.owner)
				}
			case mine:
				if !present {
					return false, fmt.Errorf("%s %s (owner %d) deleted, but the action is Anonymize", t.name, k, r.owner)
				}
				if err := anonymized(t, old, now); err != nil {
					return false, fmt.Errorf("under-erasure: %s %s (owner %d): %w", t.name, k, r.owner, err)
				}
			default:
				if !present || !maps(old, now) {
					return false, fmt.Errorf("over-erasure: %s %s (owner %d, held %v) changed: %v → %v", t.name, k, r.owner, heldRows[ti][r], old, now)
				}
			}
		}
	}
	return false, nil
}

// dryRun counts each operation (what a dry run reports) and runs the
// PurgeJob's own preflight.
func dryRun(ctx context.Context, d datastore.Driver, res []engine.Step) ([]int64, string, error) {
	var counts []int64
	var ops []datastore.Operation
	for _, r := range res {
		n, err := d.Count(ctx, r.Op)
		if err != nil {
			return nil, "", err
		}
		counts = append(counts, n)
		ops = append(ops, r.Op)
	}
	b, err := d.(datastore.Referrers).Blockers(ctx, ops)
	if err != nil || len(b) == 0 {
		return counts, "", err
	}
	return counts, engine.DescribeBlocker(b[0]), nil
}

// execute runs every operation batch by batch, as the PurgeJob controller
// does; at a random batch the "manager restarts": a fresh driver, the job
// resolved again (with the sealed keys), resumed from the checkpointed
// cursor.
func execute(ctx context.Context, st *store, d *datastore.Driver, job *retentionv1.PurgeJob, in engine.Inputs, rng *rand.Rand) ([]int64, error) {
	res, err := engine.Resolve(ctx, job, in)
	if err != nil {
		return nil, err
	}
	restartAt := rng.IntN(12)
	batches := 0
	affected := make([]int64, len(res))
	for i := range res {
		cursor := ""
		for done := false; !done; {
			if batches == restartAt {
				(*d).Close()
				if *d, err = st.open(ctx); err != nil {
					return nil, err
				}
				if res, err = engine.Resolve(ctx, job, in); err != nil {
					return nil, err
				}
			}
			b, err := (*d).Execute(ctx, res[i].Op, cursor)
			if err != nil {
				return nil, fmt.Errorf("operation %d (%s) after %d batches: %w", i, res[i].Op.Collection.Name, batches, err)
			}
			batches++
			affected[i] += b.Affected
			cursor, done = b.Cursor, b.Done
			if batches > 100000 {
				return nil, fmt.Errorf("no end after %d batches", batches)
			}
		}
	}
	return affected, nil
}

// retentionCase runs a retention policy's PurgeJob over one or two dated
// tables, with holds on some subjects.
func retentionCase(ctx context.Context, st *store, s *schema, ds *retentionv1.Dataset, held []int, rng *rand.Rand) (bool, error) {
	var dated []int
	for i, t := range s.tables {
		if t.ts && !t.traverseOnly {
			dated = append(dated, i)
		}
	}
	if len(dated) == 0 {
		return true, nil // nothing to purge: counted as stopped, changes nothing
	}
	// Mostly tables nothing refers to (where old records can go), sometimes
	// any dated table.
	if rng.IntN(3) > 0 {
		leaves := slices.DeleteFunc(slices.Clone(dated), func(i int) bool {
			return slices.ContainsFunc(s.tables, func(t *genTable) bool {
				return slices.ContainsFunc(t.refs, func(r fkRef) bool { return r.parent == i })
			})
		})
		if len(leaves) > 0 {
			dated = leaves
		}
	}
	rng.Shuffle(len(dated), func(i, j int) { dated[i], dated[j] = dated[j], dated[i] })
	dated = dated[:1+rng.IntN(min(2, len(dated)))]
	cutoff := metav1.NewTime(s.now.Add(-time.Duration(rng.IntN(400*24)) * time.Hour))
	var ops []retentionv1.Operation
	targets := map[string]bool{}
	for _, i := range dated {
		ops = append(ops, retentionv1.Operation{Collection: retentionv1.Identifier(s.tables[i].name), Action: retentionv1.ActionDelete, ByAge: true, Cutoff: &cutoff})
		targets[s.tables[i].name] = true
	}
	ops = erasure.OrderChildrenFirst(ds, ops)
	before, err := st.snapshot(ctx, s)
	if err != nil {
		return false, err
	}
	heldRows := s.owned(identities(held))
	// What the oracle says the run deletes: expired, not held, still there.
	sel := make([]map[*genRow]bool, len(s.tables))
	for i, t := range s.tables {
		sel[i] = map[*genRow]bool{}
		for _, r := range t.rows {
			if _, ok := before[t.name][r.key(t)]; ok && targets[t.name] && r.ts.Before(cutoff.Time) && !heldRows[i][r] {
				sel[i][r] = true
			}
		}
	}
	job := &retentionv1.PurgeJob{}
	job.Name, job.Namespace = "purge", "prop"
	job.Spec = retentionv1.PurgeJobSpec{Mode: retentionv1.ModeEnforce, Operations: ops, BatchSize: int32(1 + rng.IntN(6))}
	in := engine.Inputs{Reader: subjectsReader("none", nil), Dataset: ds, StoreType: st.kind, Holds: holdOn(held), Now: s.now}
	d, err := st.open(ctx)
	if err != nil {
		return false, err
	}
	defer func() { d.Close() }()
	res, err := engine.Resolve(ctx, job, in)
	if err != nil {
		return false, err
	}
	counts, msg, err := dryRun(ctx, d, res)
	if err != nil {
		return false, err
	}
	if msg != "" {
		return true, stoppedRightly(ctx, st, s, before, msg, sel, nil)
	}
	if b := oracleBlocked(s, before, sel, nil); b != "" {
		return false, fmt.Errorf("the preflight passed, but %s", b)
	}
	affected, err := execute(ctx, st, &d, job, in, rng)
	if err != nil {
		return false, fmt.Errorf("failed after the preflight passed: %w", err)
	}
	if !slices.Equal(affected, counts) {
		return false, fmt.Errorf("the run affected %v records per operation, the dry run counted %v", affected, counts)
	}
	after, err := st.snapshot(ctx, s)
	if err != nil {
		return false, err
	}
	for i, t := range s.tables {
		for _, r := range t.rows {
			k := r.key(t)
			old, ok := before[t.name][k]
			if !ok {
				continue
			}
			now, present := after[t.name][k]
			switch {
			case sel[i][r] && present:
				return false, fmt.Errorf("%s %s (ts %s, cutoff %s) expired and not held, still there", t.name, k, r.ts.Format(time.RFC3339), cutoff.UTC().Format(time.RFC3339))
			case !sel[i][r] && (!present || !maps(old, now)):
				return false, fmt.Errorf("%s %s (owner %d, held %v, ts %s) changed by a run that must not touch it", t.name, k, r.owner, heldRows[i][r], r.ts.Format(time.RFC3339))
			}
		}
	}
	return false, nil
}

// erasureSelection is what an erasure would do, by the oracle: the owned
// records of the tables whose final action is Delete (sel) and Anonymize
// (anon).
func erasureSelection(s *schema, owned []map[*genRow]bool, actions map[string]retentionv1.Action) (sel, anon []map[*genRow]bool) {
	sel = make([]map[*genRow]bool, len(s.tables))
	anon = make([]map[*genRow]bool, len(s.tables))
	for i, t := range s.tables {
		sel[i], anon[i] = map[*genRow]bool{}, map[*genRow]bool{}
		for r := range owned[i] {
			switch actions[t.name] {
			case retentionv1.ActionDelete:
				sel[i][r] = true
			case retentionv1.ActionAnonymize:
				anon[i][r] = true
			}
		}
	}
	return sel, anon
}

// stoppedRightly checks a run that stopped before acting: nothing changed,
// and the oracle agrees that a record left behind would refer to one the
// run deletes.
func stoppedRightly(ctx context.Context, st *store, s *schema, before map[string]map[string]map[string]string, msg string, sel, anon []map[*genRow]bool) error {
	after, err := st.snapshot(ctx, s)
	if err != nil {
		return err
	}
	for _, t := range s.tables {
		for k, old := range before[t.name] {
			if now, ok := after[t.name][k]; !ok || !maps(old, now) {
				return fmt.Errorf("stopped (%s), but %s %s changed", msg, t.name, k)
			}
		}
	}
	if sel != nil && oracleBlocked(s, before, sel, anon) == "" {
		return fmt.Errorf("stopped (%s), but no record outside the run refers to one it deletes", msg)
	}
	return nil
}

// oracleBlocked names a record that would be left referring to a deleted
// one ("" when none): any foreign key, declared or not, from a record that
// is still there, not deleted, and not anonymized with that key set to NULL
// (anon: the records an erasure anonymizes; nil for retention runs).
func oracleBlocked(s *schema, before map[string]map[string]map[string]string, sel, anon []map[*genRow]bool) string {
	for ci, c := range s.tables {
		for _, r := range c.rows {
			if _, ok := before[c.name][r.key(c)]; !ok || sel[ci][r] {
				continue
			}
			for _, ref := range c.refs {
				id := r.fk[ref.cols[0]]
				if id == nil {
					continue
				}
				p := s.tables[ref.parent]
				for _, pr := range p.rows {
					if pr.id != *id || (p.composite && (r.fk[ref.cols[1]] == nil || pr.part != *r.fk[ref.cols[1]])) {
						continue
					}
					if sel[ref.parent][pr] && !(anon != nil && anon[ci][r] && c.nullFK[ref.cols[0]]) {
						return fmt.Sprintf("%s %s refers to %s %s", c.name, r.key(c), p.name, pr.key(p))
					}
				}
			}
		}
	}
	return ""
}

// anonymized checks an erased record that is kept: identities and nulled
// keys are NULL, the note is rewritten, everything else is as it was.
func anonymized(t *genTable, old, now map[string]string) error {
	for c, v := range old {
		switch {
		case c == "user_id" || c == "email" || t.nullFK[c]:
			if now[c] != "<null>" {
				return fmt.Errorf("%s is %q after anonymization", c, now[c])
			}
		case c == "note":
			if now[c] == v {
				return fmt.Errorf("note unchanged")
			}
		default:
			if now[c] != v {
				return fmt.Errorf("%s changed from %q to %q", c, v, now[c])
			}
		}
	}
	return nil
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
