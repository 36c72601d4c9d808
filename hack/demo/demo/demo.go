// Package demo is `make demo`: a local control plane, throwaway datastores
// (internal/servers) with a realistic shop database, the Lethe manager binary
// (internal/managerproc) and the samples of config/samples, whose Recipient
// a receiver of the demo's own plays (receiver.go); it runs the retention
// policy and the deletion requests and prints what Lethe did, with every
// count read back from the stores and every erasure notice as the receiver
// verified it. hack/demo is its command; test/demo
// runs it as a smoke test.
package demo

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/managerproc"
	"github.com/lethe-dev/lethe/internal/servers"
	"github.com/lethe-dev/lethe/internal/testenv"
)

//go:embed manifests/*.yaml
var manifests embed.FS

// Namespace the demo applies the samples into.
const Namespace = "shop"

// shopDatabase is the PostgreSQL database of the samples' DataStore.
const shopDatabase = "shop"

// MinUsers is the smallest data set: the samples name users up to 100318.
const MinUsers = 400

// Options configure a run.
type Options struct {
	// Users is the number of sample users (default 20,000; at least
	// MinUsers). Every other table scales with it.
	Users int
	// Keep leaves everything running after the results, until ctx is done.
	Keep bool
	// Out receives progress lines and results (default os.Stdout).
	Out io.Writer
	// ManagerLog is where the manager logs ("" : manager.log in the run
	// directory, removed with it).
	ManagerLog string
	// Stores selects the datastores besides PostgreSQL (names of
	// StoreNames, any case); nil means all of them. A store whose server
	// software is not installed is skipped with a note, unless
	// RequireStores is set.
	Stores        []string
	RequireStores bool
	// Hooks let the smoke test look at the database while it runs.
	Hooks Hooks
}

// Hooks run while everything is up.
type Hooks struct {
	// Loaded runs after the data is loaded and counted, before the policy
	// runs.
	Loaded func(ctx context.Context, r *Report) error
	// Done runs after the results are printed.
	Done func(ctx context.Context, r *Report) error
}

// Report is what a run did and saw.
type Report struct {
	Dir         string // the run directory (removed at the end)
	Kubeconfig  string
	Namespace   string
	PostgresURL string // the shop database, while it runs
	// Database counts before anything ran, after the policy run and at the
	// end (after the deletion requests).
	Before, AfterPolicy, After Snapshot
	// PolicyRun is the PurgeJob of the run of the samples' policy;
	// SafetyReleased says the demo released it past its safety limit.
	PolicyRun      string
	SafetyReleased bool
	// PolicyRuns are the PurgeJobs of every policy run, by policy.
	PolicyRuns map[string]string
	// Stores are the datastores the demo ran (PostgreSQL first); Skipped
	// those it left out, with why.
	Stores  []string
	Skipped []string
	// RequestsHandled says a DeletionRequest controller acted on the
	// requests (false: none is registered in this build).
	RequestsHandled bool
	// BackupTime is when the dump of the shop database was taken, before
	// the deletion requests; Restored counts the stores after it was
	// restored (at the end), Replayed after the ErasureReplay Replay
	// (whose status is ReplayStatus) erased again what it brought back.
	BackupTime         time.Time
	Restored, Replayed Snapshot
	Replay             string
	ReplayStatus       *retentionv1.ErasureReplayStatus
	// Notices are what the demo's receiver (the endpoint of the sample
	// Recipient) answered, in order; no identity value, only their types.
	Notices []ReceivedNotice
	// Processes ran just before the stop; Left still ran after it.
	Processes, Left []proc
	// Stopped is when everything was stopped and removed.
	Stopped bool
}

// run is the state of one demo run.
type run struct {
	o    Options
	p    *printer
	rep  *Report
	root string

	srv  *servers.Group
	log  *os.File // the manager's (and envtest's) log
	env  *testenv.Env
	mgr  *managerproc.Manager
	k    *kubectl
	pg   *servers.Postgres // holds shopDatabase
	db   *pgx.Conn
	subs []subject
	// requests names the DeletionRequests filed.
	requests []string
	// kept is set once everything runs for KEEP=1.
	kept bool
	// kustomized is kubectl kustomize config/samples.
	kustomized []byte
	// stores run besides PostgreSQL.
	stores []store
	// rcv is the endpoint of the sample Recipient.
	rcv *receiver
	// backup is the dump of the shop database taken before the deletion
	// requests (restore.go).
	backup *backup
}

// Run runs the demo. Everything it starts is stopped and removed before it
// returns, also when ctx is cancelled (Ctrl-C).
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Users == 0 {
		o.Users = 20000
	}
	if o.Users < MinUsers {
		return nil, fmt.Errorf("at least %d users, please: the samples name users up to 100318", MinUsers)
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	r := &run{o: o, p: &printer{w: o.Out, start: time.Now()}, rep: &Report{Namespace: Namespace, PolicyRuns: map[string]string{}}}
	for _, st := range allStores() {
		if o.Stores == nil || slices.ContainsFunc(o.Stores, func(n string) bool { return strings.EqualFold(n, st.name()) }) {
			r.stores = append(r.stores, st)
		}
	}
	for _, n := range o.Stores {
		if !slices.ContainsFunc(allStores(), func(st store) bool { return strings.EqualFold(n, st.name()) }) {
			return nil, fmt.Errorf("unknown store %q: choose from %s", n, strings.Join(StoreNames(), ", "))
		}
	}
	err := r.run(ctx)
	if ctx.Err() != nil && !r.kept {
		r.p.step("Interrupted: stopping everything (Ctrl-C again to exit at once; the next run cleans up what that leaves)")
	}
	r.stop()
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return r.rep, err
}

func (r *run) run(ctx context.Context) error {
	var err error
	if r.root, err = testenv.Root(); err != nil {
		return err
	}
	parent := servers.TempParent()
	if killed, removed := sweepStale(parent); killed+removed > 0 {
		r.p.step("Cleaned up after an earlier demo that was killed: %d processes stopped, %d run directories removed", killed, removed)
	}
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("%s%d-", runDirPrefix, os.Getpid()))
	if err != nil {
		return err
	}
	// PostgreSQL runs as another user and must traverse it.
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	r.rep.Dir = dir
	r.srv = servers.NewGroup(dir)
	logPath := r.o.ManagerLog
	if logPath == "" {
		logPath = filepath.Join(dir, "manager.log")
	} else if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	if r.log, err = openLog(logPath); err != nil {
		return err
	}

	if err := r.startAll(ctx); err != nil {
		return err
	}
	if err := r.applySamples(ctx); err != nil {
		return err
	}
	if r.rep.Before, err = r.snapshot(ctx); err != nil {
		return err
	}
	r.printBefore()
	if h := r.o.Hooks.Loaded; h != nil {
		if err := h(ctx, r.rep); err != nil {
			return fmt.Errorf("hook Loaded: %w", err)
		}
	}
	for _, policy := range r.policies() {
		if err := r.runPolicy(ctx, policy); err != nil {
			return err
		}
	}
	if r.rep.AfterPolicy, err = r.snapshot(ctx); err != nil {
		return err
	}
	if err := r.dumpShop(ctx); err != nil {
		return err
	}
	if err := r.deletionRequests(ctx); err != nil {
		return err
	}
	if r.rep.After, err = r.snapshot(ctx); err != nil {
		return err
	}
	if err := r.printResults(ctx); err != nil {
		return err
	}
	if err := r.restoreAndReplay(ctx); err != nil {
		return err
	}
	if h := r.o.Hooks.Done; h != nil {
		if err := h(ctx, r.rep); err != nil {
			return fmt.Errorf("hook Done: %w", err)
		}
	}
	if r.o.Keep {
		r.keep(ctx)
	}
	return nil
}

// policies are the RetentionPolicies the demo runs: the sample's first.
func (r *run) policies() []string {
	out := []string{policyName}
	for _, st := range r.stores {
		if p := st.policy(); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// startAll starts the control plane and, meanwhile, the datastores with
// their sample data; then the manager.
func (r *run) startAll(ctx context.Context) error {
	r.p.step("Starting the control plane: kube-apiserver and etcd from bin/k8s, CRDs from config/crd/bases")
	type cp struct {
		env *testenv.Env
		err error
		d   time.Duration
	}
	cpDone := make(chan cp, 1)
	go func() {
		t0 := time.Now()
		env, err := testenv.Start()
		cpDone <- cp{env, err, time.Since(t0)}
	}()
	// The manager binary builds meanwhile (go build: cached after the
	// first time).
	type build struct {
		err error
		d   time.Duration
	}
	built := make(chan build, 1)
	go func() {
		t0 := time.Now()
		_, err := managerproc.Build(ctx)
		built <- build{err, time.Since(t0)}
	}()
	storeErrs := make([]error, len(r.stores))
	var wg sync.WaitGroup
	for i, st := range r.stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			storeErrs[i] = r.startStore(ctx, st)
		}()
	}
	dbErr := r.startDatabase(ctx)
	// Always collect the control plane and the stores, so that they are
	// stopped.
	wg.Wait()
	c := <-cpDone
	r.env = c.env
	if c.err != nil {
		return c.err
	}
	if dbErr != nil {
		return dbErr
	}
	r.rep.Stores = []string{StorePostgres}
	var started []store
	for i, st := range r.stores {
		var missing *servers.MissingError
		switch {
		case storeErrs[i] == nil:
			started = append(started, st)
			r.rep.Stores = append(r.rep.Stores, st.name())
		case errors.As(storeErrs[i], &missing) && !r.o.RequireStores:
			r.rep.Skipped = append(r.rep.Skipped, fmt.Sprintf("%s (%v)", st.name(), storeErrs[i]))
			r.p.step("Leaving %s out: %v", st.name(), storeErrs[i])
		default:
			return fmt.Errorf("%s: %w", st.name(), storeErrs[i])
		}
	}
	r.stores = started
	r.p.step("Control plane up in %s (%s)", seconds(c.d), r.env.Config.Host)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	kubeconfig, err := r.env.Kubeconfig(r.rep.Dir)
	if err != nil {
		return fmt.Errorf("writing a kubeconfig: %w", err)
	}
	r.rep.Kubeconfig = kubeconfig
	r.k = &kubectl{bin: filepath.Join(r.env.Assets, "kubectl"), kubeconfig: kubeconfig, namespace: Namespace, p: r.p}

	b := <-built
	if b.err != nil {
		return fmt.Errorf("building the manager: %w", b.err)
	}
	t0 := time.Now()
	// The manager runs as its ServiceAccount, under config/rbac only.
	mcfg, err := r.env.ManagerConfig()
	if err != nil {
		return fmt.Errorf("binding the manager's RBAC of config/rbac: %w", err)
	}
	// main.go's flags at their defaults; a fresh digest key for a
	// throwaway cluster (a cluster mounts it from a Secret).
	if r.mgr, err = managerproc.Start(ctx, managerproc.Options{Config: mcfg, Log: r.log}); err != nil {
		return fmt.Errorf("starting the manager: %w", err)
	}
	r.p.step("Lethe manager started in %s (the binary of main.go, built with go build in %s, as its own process; under the RBAC of config/rbac); its log: %s",
		seconds(time.Since(t0)), seconds(b.d), r.log.Name())
	// Everything runs now: remember it, so a killed demo is cleaned up by
	// the next one.
	if err := record(r.rep.Dir, descendants(os.Getpid())); err != nil {
		return err
	}
	return nil
}

// startStore starts one store and loads its records.
func (r *run) startStore(ctx context.Context, st store) error {
	t0 := time.Now()
	if err := st.start(ctx, r); err != nil {
		return err
	}
	r.p.step("%s in %s", st.describe(), seconds(time.Since(t0)))
	t0 = time.Now()
	n, err := st.load(ctx, r.o.Users)
	if err != nil {
		return fmt.Errorf("loading the sample records: %w", err)
	}
	r.p.step("Loaded %s records into %s in %s", num(n), st.name(), seconds(time.Since(t0)))
	return nil
}

// startDatabase starts PostgreSQL and loads the shop database.
func (r *run) startDatabase(ctx context.Context) error {
	t0 := time.Now()
	pg, err := r.srv.StartPostgres(ctx, servers.PostgresOptions{Settings: []string{
		// Loading and counting a big shop database.
		"max_wal_size=2GB", "shared_buffers=256MB", "maintenance_work_mem=256MB",
	}})
	if err != nil {
		return fmt.Errorf("starting PostgreSQL: %w", err)
	}
	r.pg = pg
	if err := pg.CreateDatabase(ctx, shopDatabase); err != nil {
		return fmt.Errorf("creating database %s: %w", shopDatabase, err)
	}
	r.rep.PostgresURL = pg.URL(shopDatabase)
	r.p.step("PostgreSQL %s up on %s:%d in %s (initdb as an unprivileged user, data in %s)",
		pg.Version, pg.Host, pg.Port, seconds(time.Since(t0)), r.srv.Dir())

	t0 = time.Now()
	r.p.step("Loading the shop database: %s users with their devices, browsing history, orders and support messages (generate_series, in the server)", num(int64(r.o.Users)))
	if err := loadShop(ctx, r.rep.PostgresURL, r.o.Users); err != nil {
		return fmt.Errorf("loading the sample data: %w", err)
	}
	if r.db, err = pgx.Connect(ctx, r.rep.PostgresURL); err != nil {
		return err
	}
	if r.subs, err = loadSubjects(ctx, r.db); err != nil {
		return err
	}
	var total int64
	if err := r.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM devices) + (SELECT count(*) FROM browsing_logs)
		+ (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_items) + (SELECT count(*) FROM support_messages)`).Scan(&total); err != nil {
		return err
	}
	r.p.step("Loaded %s rows in 6 tables in %s", num(total), seconds(time.Since(t0)))
	return nil
}

// keep leaves everything running until ctx is done.
func (r *run) keep(ctx context.Context) {
	r.kept = true
	r.p.heading("Everything keeps running (KEEP=1). Explore with kubectl; Ctrl-C stops it all.")
	kubectl := filepath.Join(r.env.Assets, "kubectl")
	if rel, err := filepath.Rel(r.root, kubectl); err == nil && !strings.HasPrefix(rel, "..") {
		kubectl = rel
	}
	var b strings.Builder
	fmt.Fprintf(&b, `  export KUBECONFIG=%s
  %s get lethe -n %s -o wide
  %s describe purgejob -n %s %s
  %s get events -n %s
  %s explain retentionpolicy.spec.rules
  psql '%s'   # PostgreSQL
`, r.rep.Kubeconfig, kubectl, Namespace, kubectl, Namespace, r.rep.PolicyRun, kubectl, Namespace, kubectl, r.rep.PostgresURL)
	for _, st := range r.stores {
		fmt.Fprintf(&b, "  %s\n", st.explore())
	}
	fmt.Fprintf(&b, "  manager log: %s", r.managerLog())
	r.p.plain(b.String())
	<-ctx.Done()
	r.p.plain("")
}

func (r *run) managerLog() string {
	if r.log == nil {
		return ""
	}
	return r.log.Name()
}

// stop stops everything in reverse order and checks that nothing is left.
func (r *run) stop() {
	if r.rep.Dir == "" {
		return
	}
	r.p.step("Stopping the manager, the datastores, kube-apiserver and etcd")
	r.rep.Processes = descendants(os.Getpid())
	if r.rcv != nil {
		r.rcv.Close()
		r.rep.Notices = r.rcv.Received()
	}
	if r.db != nil {
		_ = r.db.Close(context.Background())
	}
	if r.pg != nil {
		r.pg.Close()
	}
	for _, st := range r.stores {
		st.close()
	}
	var errs []error
	if r.mgr != nil {
		if err := r.mgr.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("manager: %w", err))
		}
	}
	r.srv.Close()
	if r.env != nil {
		if err := r.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("control plane: %w", err))
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.rep.Left = stillRunning(r.rep.Processes)
		if len(r.rep.Left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.log != nil {
		_ = r.log.Close()
	}
	if err := os.RemoveAll(r.rep.Dir); err != nil {
		errs = append(errs, err)
	}
	if len(r.rep.Left) > 0 {
		var b strings.Builder
		for _, p := range r.rep.Left {
			fmt.Fprintf(&b, "%s\n", p)
		}
		r.p.step("Stopped, but %d processes are still running:", len(r.rep.Left))
		r.p.block(b.String())
		return
	}
	r.rep.Stopped = len(errs) == 0
	msg := fmt.Sprintf("Stopped %d processes; none left. Removed %s", len(r.rep.Processes), r.rep.Dir)
	if len(errs) > 0 {
		msg += fmt.Sprintf(" (while stopping: %v)", errors.Join(errs...))
	}
	r.p.step("%s", msg)
}
