// Package demo is the smoke test of `make demo`: it runs the demo's whole
// flow (hack/demo/demo.Run) with a small data set and checks that the counts
// it reports are what the database holds, that they agree with what Lethe
// says it did, and that everything the demo started is gone afterwards.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/hack/demo/demo"
)

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	var pgAddr string
	var jobs retentionv1.PurgeJobList
	var replayJobs []retentionv1.PurgeJob
	var requests retentionv1.DeletionRequestList
	// The minor's identity values, as the shop database held them.
	var minorIdentities []string
	start := time.Now()
	managerLog := filepath.Join(t.TempDir(), "manager.log")
	rep, err := demo.Run(ctx, demo.Options{
		Users:      500,
		Out:        &out,
		ManagerLog: managerLog,
		// Every store: a missing server is a failure here, not a skip.
		RequireStores: true,
		Hooks: demo.Hooks{
			Loaded: func(ctx context.Context, r *demo.Report) error {
				pgAddr = hostPort(t, r.PostgresURL)
				var err error
				if minorIdentities, err = identitiesOf(ctx, r.PostgresURL, demo.MinorUserID); err != nil {
					return err
				}
				return checkCounts(ctx, r.PostgresURL, "before", r.Before)
			},
			Done: func(ctx context.Context, r *demo.Report) error {
				if err := checkCounts(ctx, r.PostgresURL, "after", r.After); err != nil {
					return err
				}
				c, err := kubeClient(r.Kubeconfig)
				if err != nil {
					return err
				}
				if err := c.List(ctx, &requests, client.InNamespace(r.Namespace)); err != nil {
					return err
				}
				if err := c.List(ctx, &jobs, client.InNamespace(r.Namespace)); err != nil {
					return err
				}
				// The PurgeJobs of the ErasureReplay's DeletionRequests
				// erase a restored store: the counts of the run before the
				// restore leave them out.
				replayed := map[string]bool{}
				for _, dr := range requests.Items {
					if dr.Labels[retentionv1.LabelErasureReplay] != "" {
						replayed[dr.Name] = true
					}
				}
				jobs.Items = slices.DeleteFunc(jobs.Items, func(j retentionv1.PurgeJob) bool {
					names := strings.Split(j.Annotations[retentionv1.AnnotationDeletionRequests], ",")
					if slices.ContainsFunc(names, func(n string) bool { return replayed[n] }) {
						replayJobs = append(replayJobs, j)
						return true
					}
					return false
				})
				return nil
			},
		},
	})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo.Run: %v", err)
	}
	t.Logf("the demo took %s", time.Since(start).Round(time.Millisecond))

	t.Run("the manager needs no more than config/rbac", func(t *testing.T) {
		// The demo runs the manager as its ServiceAccount bound only to
		// config/rbac/role.yaml.
		b, err := os.ReadFile(managerLog)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Fatal("the manager logged nothing")
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "forbidden") {
				t.Errorf("the API server refused the manager: %s", line)
			}
		}
	})
	t.Run("every store ran", func(t *testing.T) {
		want := append([]string{demo.StorePostgres}, demo.StoreNames()...)
		if strings.Join(rep.Stores, ",") != strings.Join(want, ",") {
			t.Errorf("stores %v, want %v (skipped: %v)", rep.Stores, want, rep.Skipped)
		}
	})
	t.Run("counts agree with Lethe's status", func(t *testing.T) {
		checkAgainstStatus(t, rep, jobs.Items)
	})
	t.Run("promises kept", func(t *testing.T) {
		for i, p := range rep.After.Promises {
			before := rep.Before.Promises[i]
			if before.Violations == 0 {
				t.Errorf("%s on %s: no record past its period before the run; the sample data should have some", p.Name, p.Table)
			}
			if p.Violations != p.Held {
				t.Errorf("%s on %s: %d records past their period after the run, only %d of them under legal hold", p.Name, p.Table, p.Violations, p.Held)
			}
		}
		held := int64(0)
		for _, p := range rep.After.Promises {
			held += p.Held
		}
		if held == 0 {
			t.Errorf("no record under legal hold is left past its period: the hold does not show")
		}
	})
	t.Run("deletion requests", func(t *testing.T) {
		if !rep.RequestsHandled {
			if !strings.Contains(out.String(), "no DeletionRequest controller") {
				t.Errorf("requests not handled, and the output does not say so")
			}
			return
		}
		for _, s := range rep.After.Subjects {
			if s.UserID != demo.MinorUserID {
				continue
			}
			for table, n := range s.Rows {
				if n != 0 {
					t.Errorf("%d records of the minor are left in %s", n, table)
				}
			}
		}
	})
	t.Run("the minor's erasure notice is acknowledged", func(t *testing.T) {
		if !rep.RequestsHandled {
			t.Skip("no DeletionRequest controller in this build")
		}
		var minor *retentionv1.DeletionRequest
		for i := range requests.Items {
			if requests.Items[i].Spec.Reason == retentionv1.ReasonMinor {
				minor = &requests.Items[i]
			}
		}
		if minor == nil {
			t.Fatalf("no DeletionRequest with reason Minor among %d", len(requests.Items))
		}
		if len(minor.Status.Recipients) != 1 || minor.Status.Recipients[0].Name != "crm-vendor" || minor.Status.Recipients[0].State != retentionv1.NoticeAcknowledged {
			t.Errorf("deletionrequest/%s status.recipients = %+v, want crm-vendor Acknowledged", minor.Name, minor.Status.Recipients)
		}
		if rc := minor.Status.Receipt; rc == nil || len(rc.Acknowledgements) != 1 || rc.Acknowledgements[0].Recipient != "crm-vendor" {
			t.Errorf("deletionrequest/%s: the receipt does not record crm-vendor's acknowledgement: %+v", minor.Name, rc)
		}
		verified := 0
		for _, n := range rep.Notices {
			if !n.Verified || n.Status != 200 {
				t.Errorf("the receiver rejected a request: %+v", n)
				continue
			}
			if n.RequestID == string(minor.UID) && n.Recipient == "crm-vendor" && strings.Join(n.IdentityTypes, ",") == "email,user_id" {
				verified++
			}
		}
		if verified != 1 {
			t.Errorf("the receiver verified %d notices of deletionrequest/%s with identities of types email and user_id, want 1: %+v", verified, minor.Name, rep.Notices)
		}
		o := out.String()
		for _, want := range []string{"request " + string(minor.UID), "identities of types email, user_id; signature verified; answered 200"} {
			if !strings.Contains(o, want) {
				t.Errorf("output lacks the receiver's log line (%q)", want)
			}
		}
	})
	t.Run("a restore does not bring the minor back", func(t *testing.T) {
		if !rep.RequestsHandled {
			t.Skip("no DeletionRequest controller in this build")
		}
		rows := func(s demo.Snapshot, who int64) map[string]int64 {
			for _, sub := range s.Subjects {
				if sub.UserID == who {
					return sub.Rows
				}
			}
			t.Fatalf("no rows of user %d in the snapshot", who)
			return nil
		}
		var back int64
		for _, table := range demo.Tables {
			k := demo.Key(demo.StorePostgres, table)
			restored, replayed := rows(rep.Restored, demo.MinorUserID)[k], rows(rep.Replayed, demo.MinorUserID)[k]
			if b := rows(rep.AfterPolicy, demo.MinorUserID)[k]; restored != b {
				t.Errorf("%s: %d records of the minor after the restore, %d in the backup", table, restored, b)
			}
			if replayed != 0 {
				t.Errorf("%s: %d records of the minor left after the replay", table, replayed)
			}
			back += restored
			// Everything else is as the erasure left it: same rows, same
			// anonymized rows, Ada's records untouched by the replay.
			if a, r := rep.After.Table(table), rep.Replayed.Table(table); a != r {
				t.Errorf("%s after the replay %+v, after the erasure %+v", table, r, a)
			}
			if a, r := rows(rep.Restored, demo.AdaUserID)[k], rows(rep.Replayed, demo.AdaUserID)[k]; a != r {
				t.Errorf("%s: the replay changed Ada's records: %d → %d", table, a, r)
			}
		}
		if back == 0 {
			t.Fatalf("the restore brought back no record of the minor: nothing was tested")
		}
		s := rep.ReplayStatus
		if s == nil {
			t.Fatalf("no ErasureReplay status")
		}
		if s.Phase != retentionv1.ReplayCompleted || s.SubjectsFound != 1 || s.SubjectsErased != 1 {
			t.Errorf("erasurereplay/%s: phase %s, %d subjects found, %d erased; want Completed, 1, 1", rep.Replay, s.Phase, s.SubjectsFound, s.SubjectsErased)
		}
		// The replay erases again what the minor's erasure erased in the
		// Datasets of the restored store, and its PurgeJobs say the same.
		var minor *retentionv1.DeletionRequest
		for i := range requests.Items {
			if requests.Items[i].Spec.Reason == retentionv1.ReasonMinor && requests.Items[i].Labels[retentionv1.LabelErasureReplay] == "" {
				minor = &requests.Items[i]
			}
		}
		if minor == nil || minor.Status.Receipt == nil {
			t.Fatalf("no receipt of the minor's erasure")
		}
		scanned := map[string]bool{}
		for _, c := range s.Collections {
			scanned[c.Dataset] = true
		}
		var erased, byJobs int64
		for _, e := range minor.Status.Receipt.Entries {
			if scanned[e.Dataset] {
				erased += e.Rows
			}
		}
		for _, j := range replayJobs {
			byJobs += j.Status.Deleted + j.Status.Anonymized
		}
		if s.RecordsErased != erased || byJobs != erased || erased < back {
			t.Errorf("erasurereplay/%s says %d records erased, its PurgeJobs %d; the minor's erasure erased %d there, the restore brought back %d identifying ones", rep.Replay, s.RecordsErased, byJobs, erased, back)
		}
		if s.Receipt == nil || s.Receipt.SHA256 == "" || s.Receipt.Records != s.RecordsErased {
			t.Errorf("erasurereplay/%s receipt %+v", rep.Replay, s.Receipt)
		}
		if !strings.Contains(out.String(), "Records that still identify the minor in the shop database") {
			t.Errorf("the output does not show the minor's records after the restore and the replay")
		}
	})
	t.Run("no identity value in the output or the manager log", func(t *testing.T) {
		if len(minorIdentities) != 3 {
			t.Fatalf("the minor's identities were not read: %q", minorIdentities)
		}
		b, err := os.ReadFile(managerLog)
		if err != nil {
			t.Fatal(err)
		}
		for name, text := range map[string]string{"the demo's output": out.String(), "the manager log": string(b)} {
			for _, v := range minorIdentities {
				if line := lineWith(text, v); line != "" {
					t.Errorf("%s shows identity value %q: %s", name, v, line)
				}
			}
		}
	})
	t.Run("output shows the counts", func(t *testing.T) {
		o := out.String()
		i := strings.Index(o, "Records per table")
		if i < 0 {
			t.Fatalf("no table of records in the output")
		}
		section, _, _ := strings.Cut(o[i:], "\n\n")
		lines := map[string][]string{}
		for _, line := range strings.Split(section, "\n") {
			if f := strings.Fields(line); len(f) > 2 {
				lines[demo.Key(f[0], f[1])] = f
			}
		}
		afterCol := 3
		if rep.RequestsHandled {
			afterCol = 4
		}
		for _, tc := range rep.Before.Tables {
			k := demo.Key(tc.Store, tc.Table)
			f := lines[k]
			if len(f) <= afterCol {
				t.Errorf("no line for %s in the output:\n%s", k, section)
				continue
			}
			if after := rep.After.TableOf(tc.Store, tc.Table).Rows; f[2] != thousands(tc.Rows) || f[afterCol] != thousands(after) {
				t.Errorf("%s: the output says %s before and %s after, the report %d and %d", k, f[2], f[afterCol], tc.Rows, after)
			}
		}
		for _, want := range []string{"kubectl -n shop get lethe -o wide", "datastore.retention.lethe.dev/shop-postgres", "purgejob.retention.lethe.dev/" + rep.PolicyRun, "none left"} {
			if !strings.Contains(o, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
	t.Run("everything stopped", func(t *testing.T) {
		if !rep.Stopped || len(rep.Left) > 0 {
			t.Errorf("stopped cleanly = %v; still running: %v", rep.Stopped, rep.Left)
		}
		if len(rep.Processes) < 3 {
			t.Errorf("the demo recorded %d processes before stopping; expected at least etcd, kube-apiserver and postgres", len(rep.Processes))
		}
		if _, err := os.Stat(rep.Dir); !os.IsNotExist(err) {
			t.Errorf("run directory %s still exists (%v)", rep.Dir, err)
		}
		if c, err := net.DialTimeout("tcp", pgAddr, time.Second); err == nil {
			c.Close()
			t.Errorf("PostgreSQL still accepts connections on %s", pgAddr)
		}
		if left := children(); len(left) > 0 {
			t.Errorf("processes started by the test are still running: %v", left)
		}
	})
}

// checkCounts counts every table again, with SQL of its own, and compares.
func checkCounts(ctx context.Context, url, when string, s demo.Snapshot) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	anonymized := map[string]string{
		"devices":          `user_agent IS NULL`,
		"browsing_logs":    `host(ip_address) ~ '(\.0|::)$'`,
		"orders":           `host(buyer_ip) ~ '(\.0|::)$' OR shipping_name = '[removed]'`,
		"support_messages": `body !~ '[^*]'`,
	}
	var errs []string
	for _, table := range demo.Tables {
		var rows, anon int64
		cond := "false"
		if a, ok := anonymized[table]; ok {
			cond = a
		}
		if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE %s) FROM %s`, cond, table)).Scan(&rows, &anon); err != nil {
			return err
		}
		got := s.Table(table)
		if got.Rows != rows {
			errs = append(errs, fmt.Sprintf("%s %s: the demo reports %d rows, the database holds %d", when, table, got.Rows, rows))
		}
		if _, ok := anonymized[table]; ok && got.Anonymized != anon {
			errs = append(errs, fmt.Sprintf("%s %s: the demo reports %d anonymized rows, the database holds %d", when, table, got.Anonymized, anon))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// stores maps the demo's Datasets to the stores they live in.
var stores = map[string]string{"shop": demo.StorePostgres, "shop-sessions": "Redis", "shop-uploads": "S3", "shop-newsletter": "MariaDB"}

// checkAgainstStatus compares what each store lost, counted by the demo,
// with what the PurgeJobs say they deleted: the policy runs between the
// first two snapshots, the erasures between the last two.
func checkAgainstStatus(t *testing.T, rep *demo.Report, jobs []retentionv1.PurgeJob) {
	policyRuns := map[string]bool{}
	for _, name := range rep.PolicyRuns {
		policyRuns[name] = true
	}
	deleted := map[bool]map[string]int64{true: {}, false: {}} // by policy run or not, then store/collection
	anonymized := map[string]int64{}
	for _, j := range jobs {
		if j.Status.Phase != "Succeeded" {
			t.Errorf("purgejob/%s: phase %q", j.Name, j.Status.Phase)
		}
		store, ok := stores[string(j.Spec.DatasetRef.Name)]
		if !ok {
			t.Errorf("purgejob/%s works on unknown Dataset %s", j.Name, j.Spec.DatasetRef.Name)
			continue
		}
		for _, op := range j.Status.Operations {
			deleted[policyRuns[j.Name]][demo.Key(store, op.Collection)] += op.Deleted
			if policyRuns[j.Name] {
				anonymized[demo.Key(store, op.Collection)] += op.Anonymized
			}
		}
	}
	if len(policyRuns) != 1+2 { // the samples' policy, Redis's and MariaDB's
		t.Errorf("policy runs %v, want three", rep.PolicyRuns)
	}
	for _, tc := range rep.Before.Tables {
		k := demo.Key(tc.Store, tc.Table)
		afterPolicy, after := rep.AfterPolicy.TableOf(tc.Store, tc.Table), rep.After.TableOf(tc.Store, tc.Table)
		if got := tc.Rows - afterPolicy.Rows; got != deleted[true][k] {
			t.Errorf("%s: %d records fewer after the policy runs, the PurgeJobs say they deleted %d", k, got, deleted[true][k])
		}
		if rep.RequestsHandled {
			if got := afterPolicy.Rows - after.Rows; got != deleted[false][k] {
				t.Errorf("%s: %d records fewer after the deletion requests, their PurgeJobs say they deleted %d", k, got, deleted[false][k])
			}
			// Only the minor's request runs (the cancellation waits for its
			// review window): it removes no more than the minor's records.
			if got, minors := afterPolicy.Rows-after.Rows, minorRows(rep.Before.Subjects, k); got > minors {
				t.Errorf("%s: the deletion requests removed %d records, the minor had %d: other people's records were erased", k, got, minors)
			}
		}
	}
	// Devices are anonymized by one operation, and none was before.
	if got, want := rep.AfterPolicy.Table("devices").Anonymized, anonymized[demo.Key(demo.StorePostgres, "devices")]; got != want || got == 0 {
		t.Errorf("devices: %d anonymized rows in the database after the policy run, the PurgeJob says %d", got, want)
	}
}

func kubeClient(kubeconfig string) (client.Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	s := runtime.NewScheme()
	if err := retentionv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: s})
}

func hostPort(t *testing.T, url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// children lists the processes this test process still has below it.
func children() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == self && f[0] != "Z" {
			cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

// identitiesOf reads a user's identity values from the shop database: the
// user id, email and phone.
func identitiesOf(ctx context.Context, url string, userID int64) ([]string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var email, phone string
	if err := conn.QueryRow(ctx, `SELECT email, phone FROM users WHERE id = $1`, userID).Scan(&email, &phone); err != nil {
		return nil, err
	}
	return []string{strconv.FormatInt(userID, 10), email, phone}, nil
}

// lineWith returns the first line of text that shows value v as a whole (a
// user id not inside a longer number, nor in a timestamp's digits), or "".
func lineWith(text, v string) string {
	re := regexp.MustCompile(`(^|[^0-9.])` + regexp.QuoteMeta(v) + `($|[^0-9])`)
	for _, line := range strings.Split(text, "\n") {
		if re.MatchString(line) {
			return line
		}
	}
	return ""
}

// minorRows is how many records of table k identified the minor.
func minorRows(subjects []demo.SubjectRows, k string) int64 {
	for _, s := range subjects {
		if s.UserID == demo.MinorUserID {
			return s.Rows[k]
		}
	}
	return 0
}
