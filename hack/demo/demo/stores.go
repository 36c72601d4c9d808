package demo

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"text/template"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// store is a datastore of the shop beside the PostgreSQL of config/samples:
// Redis (sessions and carts), S3 (uploads) and MariaDB (newsletter). Each
// brings its own DataStore, Dataset and, where age applies, RetentionPolicy
// (hack/demo/demo/manifests/<store>.yaml), and reads its counts back from
// the store itself.
type store interface {
	// name is how counts name the store (Redis, S3, MariaDB).
	name() string
	// start starts the server; missing software is a *servers.MissingError.
	start(ctx context.Context, r *run) error
	// describe is a progress line about the running server.
	describe() string
	// load writes the sample records and returns how many.
	load(ctx context.Context, users int) (int64, error)
	// manifests are the store's Lethe objects, pointing at the server.
	manifests() ([]*unstructured.Unstructured, error)
	// policy names the store's RetentionPolicy ("" when it has none).
	policy() string
	// explore is a command line for looking into the store (KEEP=1).
	explore() string
	// count reads the store's counts and the records of the subjects.
	count(ctx context.Context, s *Snapshot, subs []subject) error
	close()
}

// allStores lists every optional store, in the order the demo shows them.
func allStores() []store { return []store{&redisStore{}, &s3Store{}, &mariaStore{}} }

// StoreNames lists the optional stores (besides PostgreSQL).
func StoreNames() []string {
	var out []string
	for _, s := range allStores() {
		out = append(out, s.name())
	}
	return out
}

// manifest renders manifests/<file> with data.
func manifest(file string, data any) ([]*unstructured.Unstructured, error) {
	b, err := manifests.ReadFile("manifests/" + file)
	if err != nil {
		return nil, err
	}
	t, err := template.New(file).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return nil, err
	}
	return decodeYAML(out.Bytes())
}

// snapshot reads every count from every store.
func (r *run) snapshot(ctx context.Context) (Snapshot, error) {
	s, err := pgSnapshot(ctx, r.db, r.subs)
	if err != nil {
		return s, err
	}
	for _, st := range r.stores {
		if err := st.count(ctx, &s, r.subs); err != nil {
			return s, fmt.Errorf("counting in %s: %w", st.name(), err)
		}
	}
	return s, nil
}

// addSubjectRows records one store's counts of the subjects' records.
func addSubjectRows(s *Snapshot, subs []subject, store string, rows func(sub subject) (map[string]int64, error)) error {
	for i, sub := range subs {
		m, err := rows(sub)
		if err != nil {
			return err
		}
		for _, t := range sortedKeys(m) {
			s.Subjects[i].Rows[Key(store, t)] = m[t]
		}
	}
	return nil
}

func sortedKeys(m map[string]int64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
