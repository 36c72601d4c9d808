package erasure_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"k8s.io/utils/ptr"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// The generator: a random relational schema of 5-12 tables, with random
// data owned by subjects 1..subjects, and the Dataset that maps it. It keeps
// a hidden owner per row (not in the database) so the test can say, without
// asking Lethe, which records are a subject's.
//
// Tables only refer to tables created before them (a DAG: diamonds and
// multi-path reach, no cycles). A reference is Owned (the child row belongs
// to the parent row's subject: the generator picks a parent row of the same
// owner) or PointsTo (any parent row: a shared lookup, another buyer's
// quote). Owned references are declared in the Dataset; PointsTo ones are
// declared with ownership PointsTo or left to foreign-key discovery. A
// reference to a table with a composite primary key is a composite foreign
// key (never followed, always PointsTo). Tables hold user_id and/or email
// (the second identity) or neither.

const subjects = 6

func email(s int) string { return fmt.Sprintf("u%d@example.com", s) }

type fkRef struct {
	cols     []string // child columns
	parent   int      // parent table index
	owned    bool
	declared bool // in the Dataset (owned ones always are)
	nullable bool
	onDelete string
}

type genTable struct {
	name           string
	composite      bool // primary key (id, part)
	user, mail     bool // identity columns
	ts             bool
	action         retentionv1.Action
	traverseOnly   bool
	whenReferenced retentionv1.WhenReferenced
	refs           []fkRef
	// nullFK: owned reference columns an Anonymize action sets to NULL.
	nullFK map[string]bool
	rows   []*genRow
}

type genRow struct {
	id, part int64
	owner    int
	user     *int64
	mail     *string
	fk       map[string]*int64 // child column → value (composite: <p>_id and <p>_part)
	ts       time.Time
	note     string
}

type schema struct {
	tables []*genTable
	now    time.Time
}

func generate(rng *rand.Rand) *schema {
	n := 5 + rng.IntN(8)
	s := &schema{now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	for i := range n {
		t := &genTable{name: fmt.Sprintf("t%d", i), action: retentionv1.ActionDelete, nullFK: map[string]bool{}}
		switch {
		case i == 0:
			t.user, t.mail = true, true // the accounts table links both identities
		default:
			switch x := rng.IntN(100); {
			case x < 30:
				t.user = true
			case x < 45:
				t.mail = true
			case x < 55:
				t.user, t.mail = true, true
			}
		}
		t.composite = i > 0 && rng.IntN(5) == 0
		t.ts = rng.IntN(2) == 0
		if rng.IntN(4) == 0 {
			t.action = retentionv1.ActionAnonymize
		}
		if i > 0 && rng.IntN(10) == 0 {
			t.traverseOnly = true
		}
		if !t.traverseOnly && rng.IntN(3) == 0 {
			t.whenReferenced = retentionv1.WhenReferencedAnonymize
		}
		// References to earlier tables.
		for k := range rng.IntN(min(i, 3) + 1) {
			_ = k
			p := rng.IntN(i)
			parent := s.tables[p]
			r := fkRef{parent: p, nullable: rng.IntN(3) > 0, onDelete: "NO ACTION"}
			if parent.composite {
				r.cols = []string{fmt.Sprintf("r%d_%d_id", len(t.refs), p), fmt.Sprintf("r%d_%d_part", len(t.refs), p)}
			} else {
				r.cols = []string{fmt.Sprintf("r%d_%d_id", len(t.refs), p)}
				r.owned = rng.IntN(2) == 0
			}
			r.declared = r.owned || (!parent.composite && rng.IntN(2) == 0)
			switch x := rng.IntN(10); {
			case x == 0:
				r.onDelete = "CASCADE"
			case x == 1 && r.nullable:
				r.onDelete = "SET NULL"
			}
			if r.owned && r.nullable && t.action == retentionv1.ActionAnonymize && rng.IntN(10) < 9 {
				t.nullFK[r.cols[0]] = true
			}
			t.refs = append(t.refs, r)
		}
		s.tables = append(s.tables, t)
		s.fill(rng, t)
	}
	return s
}

// fill makes 2-10 rows per subject, each owned by that subject, and a few
// owned by nobody (owner 0: a catalogue entry, a guest's record).
func (s *schema) fill(rng *rand.Rand, t *genTable) {
	id := int64(0)
	for owner := 0; owner <= subjects; owner++ {
		for range 2 + rng.IntN(9) {
			id++
			r := &genRow{id: id, owner: owner, fk: map[string]*int64{}, note: fmt.Sprintf("note %s %d of %d", t.name, id, owner),
				ts: s.now.Add(-time.Duration(rng.IntN(400*24)) * time.Hour)}
			if t.composite {
				r.part = int64(rng.IntN(3))
			}
			if t.user && owner > 0 && rng.IntN(10) > 0 {
				r.user = ptr.To(int64(owner))
			}
			if t.mail && owner > 0 && rng.IntN(10) > 0 {
				r.mail = ptr.To(email(owner))
			}
			ok := true
			for _, ref := range t.refs {
				parent := s.tables[ref.parent]
				// An owned reference stays with the owner; one that only
				// points mostly points at what nobody owns (a catalogue),
				// sometimes at anyone's record (another buyer's quote).
				shared := !ref.owned && rng.IntN(10) > 0
				var cands []*genRow
				for _, pr := range parent.rows {
					if (ref.owned && pr.owner == owner) || (shared && pr.owner == 0) || (!ref.owned && !shared) {
						cands = append(cands, pr)
					}
				}
				var target *genRow
				if len(cands) > 0 && (!ref.nullable || rng.IntN(5) > 0) {
					target = cands[rng.IntN(len(cands))]
				}
				switch {
				case target == nil && !ref.nullable:
					ok = false
				case target == nil:
					for _, c := range ref.cols {
						r.fk[c] = nil
					}
				default:
					r.fk[ref.cols[0]] = ptr.To(target.id)
					if parent.composite {
						r.fk[ref.cols[1]] = ptr.To(target.part)
					}
				}
			}
			if ok {
				t.rows = append(t.rows, r)
			}
		}
	}
}

// columns lists a table's columns in order.
func (t *genTable) columns() []string {
	cols := []string{"id"}
	if t.composite {
		cols = append(cols, "part")
	}
	if t.user {
		cols = append(cols, "user_id")
	}
	if t.mail {
		cols = append(cols, "email")
	}
	for _, r := range t.refs {
		cols = append(cols, r.cols...)
	}
	if t.ts {
		cols = append(cols, "ts")
	}
	return append(cols, "note")
}

// key is a row's primary key as text, as the store prints it.
func (r *genRow) key(t *genTable) string {
	if t.composite {
		return fmt.Sprintf("%d|%d", r.id, r.part)
	}
	return fmt.Sprint(r.id)
}

// dataset maps the schema as its app team would.
func (s *schema) dataset(name, store string) retentionv1.Dataset {
	ds := retentionv1.Dataset{}
	ds.Name, ds.Namespace = name, "prop"
	ds.Spec.DataStoreRef.Name = retentionv1.ObjectName(store)
	for _, t := range s.tables {
		c := retentionv1.Collection{Name: retentionv1.Identifier(t.name), PrimaryKey: []retentionv1.Identifier{"id"}, Action: t.action,
			TraverseOnly: t.traverseOnly, WhenReferenced: t.whenReferenced}
		if t.composite {
			c.PrimaryKey = append(c.PrimaryKey, "part")
		}
		if t.ts {
			c.TimestampField = "ts"
		}
		nul := retentionv1.Anonymization{Strategy: retentionv1.StrategyNull}
		if t.user {
			c.Identities = append(c.Identities, retentionv1.IdentityField{Type: "user_id", Field: "user_id"})
			c.Fields = append(c.Fields, retentionv1.DataField{Name: "user_id", Anonymize: nul.DeepCopy()})
		}
		if t.mail {
			c.Identities = append(c.Identities, retentionv1.IdentityField{Type: "email", Field: "email"})
			c.Fields = append(c.Fields, retentionv1.DataField{Name: "email", Anonymize: nul.DeepCopy()})
		}
		c.Fields = append(c.Fields, retentionv1.DataField{Name: "note", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyRedact}})
		for _, r := range t.refs {
			if t.nullFK[r.cols[0]] {
				c.Fields = append(c.Fields, retentionv1.DataField{Name: retentionv1.Identifier(r.cols[0]), Anonymize: nul.DeepCopy()})
			}
			if !r.declared {
				continue
			}
			own := retentionv1.OwnershipPointsTo
			if r.owned {
				own = retentionv1.OwnershipOwned
			}
			c.References = append(c.References, retentionv1.Reference{Field: retentionv1.Identifier(r.cols[0]),
				Collection: retentionv1.Identifier(s.tables[r.parent].name), TargetField: "id", Ownership: own})
		}
		ds.Spec.Collections = append(ds.Spec.Collections, c)
	}
	return ds
}

// owned returns, per table, the rows that belong to one of the subjects
// (user_id or email values) through their own identities or an owning
// reference: the oracle of who owns what, computed from the generated data,
// never from Lethe.
func (s *schema) owned(ids map[string][]string) []map[*genRow]bool {
	out := make([]map[*genRow]bool, len(s.tables))
	for i, t := range s.tables {
		out[i] = map[*genRow]bool{}
		for _, r := range t.rows {
			mine := (r.user != nil && slices.Contains(ids["user_id"], fmt.Sprint(*r.user))) ||
				(r.mail != nil && slices.Contains(ids["email"], *r.mail))
			for _, ref := range t.refs {
				if !ref.owned || r.fk[ref.cols[0]] == nil {
					continue
				}
				for _, pr := range s.tables[ref.parent].rows {
					if pr.id == *r.fk[ref.cols[0]] && out[ref.parent][pr] {
						mine = true
					}
				}
			}
			if mine {
				out[i][r] = true
			}
		}
	}
	return out
}

// identities are the named identities of some subjects.
func identities(subs []int) map[string][]string {
	out := map[string][]string{}
	for _, s := range subs {
		out["user_id"] = append(out["user_id"], fmt.Sprint(s))
		out["email"] = append(out["email"], email(s))
	}
	return out
}

func describe(s *schema) string {
	var b strings.Builder
	for _, t := range s.tables {
		fmt.Fprintf(&b, "  %s: %d rows, action %s", t.name, len(t.rows), t.action)
		if t.user || t.mail {
			fmt.Fprintf(&b, ", identities user_id=%v email=%v", t.user, t.mail)
		}
		if t.composite {
			b.WriteString(", key (id, part)")
		}
		if t.traverseOnly {
			b.WriteString(", traverseOnly")
		}
		if t.whenReferenced != "" {
			b.WriteString(", whenReferenced " + string(t.whenReferenced))
		}
		for _, r := range t.refs {
			kind := "points to"
			if r.owned {
				kind = "owned"
			}
			fmt.Fprintf(&b, "; %v → %s (%s, declared %v, nullable %v, %s)", r.cols, s.tables[r.parent].name, kind, r.declared, r.nullable, r.onDelete)
		}
		b.WriteString("\n")
	}
	return b.String()
}
