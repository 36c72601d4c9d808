package controllers_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/ledger"
	"github.com/lethe-dev/lethe/internal/replay"
	"github.com/lethe-dev/lethe/internal/servers"
	"github.com/lethe-dev/lethe/internal/testharness"
)

// replayStore is a throwaway SQL server the restore test dumps and restores
// with the server's own tools.
type replayStore struct {
	db      *sql.DB
	dump    func(t *testing.T, file string)
	restore func(t *testing.T, file string)
}

func (s *replayStore) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := s.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func (s *replayStore) count(t *testing.T, q string) int64 {
	t.Helper()
	var n int64
	if err := s.db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// table is every row of a table in key order, each column as text
// (NULL as \N), one line a row: the byte-for-byte content compared.
func (s *replayStore) table(t *testing.T, name, where string) string {
	t.Helper()
	q := "SELECT * FROM " + name
	if where != "" {
		q += " WHERE " + where
	}
	rows, err := s.db.Query(q + " ORDER BY id")
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if i > 0 {
				b.WriteByte('|')
			}
			if v == nil {
				b.WriteString(`\N`)
			} else {
				b.Write(v)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func run(t *testing.T, stdin, stdout string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	if stdout != "" {
		f, err := os.Create(stdout)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdout = f
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v: %s", name, err, stderr.String())
	}
}

func tool(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("none of %v installed: the restore test needs the PostgreSQL and MariaDB client programs (.ci/run installs them)", names)
	return ""
}

// pgTool is a PostgreSQL client program of the same version as the server
// the tests start (a newer pg_dump refuses nothing, an older one refuses a
// newer server).
func pgTool(t *testing.T, name string) string {
	t.Helper()
	p, err := servers.PostgresTool(name)
	if err != nil {
		t.Fatalf("the restore test needs %s: %v (.ci/run installs it)", name, err)
	}
	return p
}

// pgReplayStore is a PostgreSQL DataStore "db" in ns, dumped with pg_dump
// and restored with psql into a schema dropped first.
func pgReplayStore(t *testing.T, ns string) *replayStore {
	pg := postgresStore(t, ns, "db")
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pgDump, psql := pgTool(t, "pg_dump"), pgTool(t, "psql")
	env := append(os.Environ(), "PGPASSWORD="+pg.Password)
	conn := []string{"-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pg.User, "-d", pg.Database}
	s := &replayStore{db: db}
	s.dump = func(t *testing.T, file string) {
		cmd := exec.Command(pgDump, append(conn, "--no-owner", "--no-privileges", "-f", file)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pg_dump: %v: %s", err, out)
		}
	}
	s.restore = func(t *testing.T, file string) {
		s.exec(t, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")
		cmd := exec.Command(psql, append(conn, "-v", "ON_ERROR_STOP=1", "-q", "-f", file)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql: %v: %s", err, out)
		}
	}
	return s
}

// mariaReplayStore is a MariaDB DataStore "db" in ns, dumped with
// mariadb-dump and restored with the mariadb client.
func mariaReplayStore(t *testing.T, ns string) *replayStore {
	my := testharness.MariaDB(t)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-credentials", Labels: marked()}, StringData: map[string]string{"username": my.User, "password": my.Password}})
	create(t, &retentionv1.DataStore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, Spec: retentionv1.DataStoreSpec{
		Type: retentionv1.DataStoreMySQL, Host: my.Host, Port: ptr.To(int32(my.Port)), Database: retentionv1.Identifier(my.Database),
		TLS: retentionv1.TLSDisable, CredentialsSecretRef: &retentionv1.SecretReference{Name: "db-credentials"}}})
	db, err := sql.Open("mysql", my.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dump, client := tool(t, "mariadb-dump", "mysqldump"), tool(t, "mariadb", "mysql")
	conn := []string{"-h", my.Host, "-P", strconv.Itoa(my.Port), "-u", my.User, "-p" + my.Password, "--protocol=TCP"}
	s := &replayStore{db: db}
	s.dump = func(t *testing.T, file string) {
		run(t, "", file, dump, append(conn, "--single-transaction", "--skip-dump-date", my.Database)...)
	}
	s.restore = func(t *testing.T, file string) {
		run(t, file, "", client, append(conn, my.Database)...)
	}
	return s
}

// replayUsers are the people of the restore test: three erased after the
// backup (one named by email only, reached elsewhere through the user_id
// derived from it), two erased before it (one of whom signed up again
// before the backup, with the same email), one never erased.
var replayUsers = []struct{ id, email string }{
	{"rp_ada_7731", "rp-ada-7731@example.org"},
	{"rp_bob_7732", "rp-bob-7732@example.org"},
	{"rp_cy_7733", "rp-cy-7733@example.org"},
	{"rp_dora_7734", "rp-dora-7734@example.org"},
	{"rp_eve_7735", "rp-eve-7735@example.org"},
	{"rp_frank_7736", "rp-frank-7736@example.org"},
	{"rp_dora_again_7737", "rp-dora-7734@example.org"}, // dora, signed up again
}

func seedReplayUser(t *testing.T, s *replayStore, i int) {
	u := replayUsers[i]
	s.exec(t, fmt.Sprintf("INSERT INTO users VALUES ('%s', '%s', '+1-555-%04d')", u.id, u.email, i))
	for d := 0; d < 3; d++ {
		s.exec(t, fmt.Sprintf("INSERT INTO devices VALUES (%d, '%s', 'phone %d')", i*10+d, u.id, d))
	}
	for m := 0; m < 4; m++ {
		s.exec(t, fmt.Sprintf("INSERT INTO messages VALUES (%d, '%s', 'hello from %s')", i*10+m, u.id, u.email))
	}
	for o := 0; o < 2; o++ {
		s.exec(t, fmt.Sprintf("INSERT INTO orders VALUES (%d, '%s', '%d Main Street, %s', 12.50)", i*10+o, u.id, o, u.id))
	}
	s.exec(t, fmt.Sprintf("INSERT INTO audit VALUES (%d, '%s', 'signed up')", i*10, u.id))
}

func replayDataset(ns string) *retentionv1.Dataset {
	ref := func(field string) []retentionv1.Reference {
		return []retentionv1.Reference{{Field: retentionv1.Identifier(field), Collection: "users", TargetField: "id"}}
	}
	erased := "[erased]"
	userID := []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}
	return &retentionv1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: retentionv1.DatasetSpec{
			DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
			Collections: []retentionv1.Collection{
				{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}, {Type: "phone", Field: "phone"}}},
				{Name: "devices", Identities: userID, References: ref("user_id")},
				{Name: "messages", Identities: userID, References: ref("user_id")},
				{Name: "orders", Action: retentionv1.ActionAnonymize, Identities: userID, References: ref("user_id"),
					Fields: []retentionv1.DataField{
						{Name: "user_id", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyNull}},
						{Name: "address", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyFixed, Replacement: &erased}},
					}},
			},
		},
	}
}

// auditDataset is a second Dataset on the same store, which the erasure of
// bob does not reach (its scope is app only).
func auditDataset(ns string) *retentionv1.Dataset {
	return &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "audit"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
		Collections:  []retentionv1.Collection{{Name: "audit", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "user_id"}}}}}}
}

// eraseReplayUser erases users[i] by a DeletionRequest naming the given
// identity types (scoped to Dataset app for bob), and waits for it.
func eraseReplayUser(t *testing.T, ns string, i int, types ...string) {
	t.Helper()
	u := replayUsers[i]
	name := strings.ReplaceAll(strings.TrimSuffix(u.id, u.id[strings.LastIndex(u.id, "_"):]), "_", "-")
	data := map[string]string{}
	for _, typ := range types {
		data[typ] = map[string]string{"user_id": u.id, "email": u.email}[typ]
	}
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: marked()}, StringData: data})
	dr := &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: retentionv1.DeletionRequestSpec{
		Subject: retentionv1.Subject{IdentitiesSecretRef: &retentionv1.SecretReference{Name: name}}, Reason: retentionv1.ReasonSubjectRequest}}
	if i == 1 {
		dr.Spec.Scope = &retentionv1.ErasureScope{Datasets: []retentionv1.ObjectName{"app"}}
	}
	create(t, dr)
}

var replayTables = []string{"users", "devices", "messages", "orders", "audit"}

// erasedIn are the users erased after the backup in a table: bob's erasure
// did not reach Dataset audit.
func erasedIn(table string) []int {
	if table == "audit" {
		return []int{0, 2}
	}
	return []int{0, 1, 2}
}

// notOf is the condition selecting the rows not of users idx (by key).
func notOf(table string, idx ...int) string {
	if table == "users" {
		var ids []string
		for _, i := range idx {
			ids = append(ids, "'"+replayUsers[i].id+"'")
		}
		return "id NOT IN (" + strings.Join(ids, ", ") + ")"
	}
	var keys []string
	for _, i := range idx {
		for k := i * 10; k < i*10+10; k++ {
			keys = append(keys, strconv.Itoa(k))
		}
	}
	return "id NOT IN (" + strings.Join(keys, ", ") + ")"
}

func TestErasureReplayAfterRestore(t *testing.T) {
	for _, c := range []struct {
		name  string
		store func(*testing.T, string) *replayStore
		ddl   []string
	}{
		{"PostgreSQL", pgReplayStore, []string{
			`CREATE TABLE users (id text PRIMARY KEY, email text NOT NULL, phone text)`,
			`CREATE TABLE devices (id bigint PRIMARY KEY, user_id text NOT NULL REFERENCES users(id), label text)`,
			`CREATE TABLE messages (id bigint PRIMARY KEY, user_id text NOT NULL REFERENCES users(id), body text)`,
			`CREATE TABLE orders (id bigint PRIMARY KEY, user_id text REFERENCES users(id), address text, total numeric(10,2))`,
			`CREATE TABLE audit (id bigint PRIMARY KEY, user_id text, what text)`,
		}},
		{"MariaDB", mariaReplayStore, []string{
			`CREATE TABLE users (id VARCHAR(40) PRIMARY KEY, email VARCHAR(100) NOT NULL, phone VARCHAR(40))`,
			`CREATE TABLE devices (id BIGINT PRIMARY KEY, user_id VARCHAR(40) NOT NULL, label VARCHAR(40), FOREIGN KEY (user_id) REFERENCES users(id))`,
			`CREATE TABLE messages (id BIGINT PRIMARY KEY, user_id VARCHAR(40) NOT NULL, body TEXT, FOREIGN KEY (user_id) REFERENCES users(id))`,
			`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id VARCHAR(40) NULL, address VARCHAR(200), total DECIMAL(10,2), FOREIGN KEY (user_id) REFERENCES users(id))`,
			`CREATE TABLE audit (id BIGINT PRIMARY KEY, user_id VARCHAR(40), what VARCHAR(40))`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			startManager(t, controllers.Options{})
			ns := namespace(t)
			s := c.store(t, ns)
			s.exec(t, c.ddl...)
			for i := 0; i < 6; i++ {
				seedReplayUser(t, s, i)
			}
			create(t, replayDataset(ns))
			create(t, auditDataset(ns))

			// Before the backup: dora (by email) and eve are erased; dora
			// signs up again with the same email.
			eraseReplayUser(t, ns, 3, "email")
			eraseReplayUser(t, ns, 4, "user_id", "email")
			waitRequest(t, ns, "rp-dora", retentionv1.RequestCompleted)
			waitRequest(t, ns, "rp-eve", retentionv1.RequestCompleted)
			seedReplayUser(t, s, 6)
			time.Sleep(1100 * time.Millisecond)
			backup := time.Now().Truncate(time.Second)
			file := filepath.Join(t.TempDir(), "backup.sql")
			s.dump(t, file)
			time.Sleep(1100 * time.Millisecond)

			// After it: three subjects are erased, cy by email only.
			eraseReplayUser(t, ns, 0, "user_id", "email")
			eraseReplayUser(t, ns, 1, "user_id")
			eraseReplayUser(t, ns, 2, "email")
			for _, n := range []string{"rp-ada", "rp-bob", "rp-cy"} {
				waitRequest(t, ns, n, retentionv1.RequestCompleted)
			}
			if n := s.count(t, "SELECT count(*) FROM messages WHERE id < 30"); n != 0 {
				t.Fatalf("%d messages of the three left before the restore", n)
			}

			// The restore brings them back.
			s.restore(t, file)
			restored := map[string]string{}
			resurrected, rowsRestored := map[string]int64{}, map[string]int64{}
			var total int64
			for _, tb := range replayTables {
				rowsRestored[tb] = s.count(t, "SELECT count(*) FROM "+tb)
				restored[tb] = s.table(t, tb, notOf(tb, erasedIn(tb)...))
				resurrected[tb] = s.count(t, "SELECT count(*) FROM "+tb+" WHERE NOT ("+notOf(tb, erasedIn(tb)...)+")")
				total += resurrected[tb]
			}
			if resurrected["messages"] != 12 || resurrected["users"] != 3 {
				t.Fatalf("the restore did not bring the three back: %v", resurrected)
			}
			if s.count(t, "SELECT count(*) FROM users WHERE id = '"+replayUsers[4].id+"'") != 0 || s.count(t, "SELECT count(*) FROM users WHERE id = '"+replayUsers[6].id+"'") != 1 {
				t.Fatal("the backup should hold dora's new account and not eve")
			}

			// A dry run finds them and changes nothing.
			create(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dry"},
				Spec: retentionv1.ErasureReplaySpec{DataStore: "db", BackupTime: metav1.Time{Time: backup}, DryRun: true, BatchSize: ptr.To(int32(4))}})
			dry := waitReplay(t, ns, "dry")
			if dry.Status.SubjectsFound != 3 || dry.Status.SubjectsBeforeBackup != 1 || len(dry.Status.Requests) != 0 || dry.Status.Receipt == nil || dry.Status.Receipt.Verified {
				t.Fatalf("dry run status: %+v", dry.Status)
			}
			for _, tb := range replayTables {
				if n := s.count(t, "SELECT count(*) FROM "+tb+" WHERE NOT ("+notOf(tb, erasedIn(tb)...)+")"); n != resurrected[tb] {
					t.Fatalf("the dry run changed %s", tb)
				}
			}

			// The replay, in pages of 4 records.
			create(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "after-restore"},
				Spec: retentionv1.ErasureReplaySpec{DataStore: "db", BackupTime: metav1.Time{Time: backup}, BatchSize: ptr.To(int32(4))}})
			er := waitReplay(t, ns, "after-restore")

			// The three are gone again (their orders anonymized; bob's audit
			// row stays: his erasure did not reach Dataset audit), every
			// other row is as restored, byte for byte.
			for _, tb := range []string{"users", "devices", "messages", "audit"} {
				if n := s.count(t, "SELECT count(*) FROM "+tb+" WHERE NOT ("+notOf(tb, erasedIn(tb)...)+")"); n != 0 {
					t.Errorf("%d rows of the three left in %s", n, tb)
				}
			}
			if n := s.count(t, "SELECT count(*) FROM orders WHERE id < 30 AND user_id IS NULL AND address = '[erased]'"); n != 6 {
				t.Errorf("%d of the three's 6 orders anonymized", n)
			}
			for _, tb := range replayTables {
				if got := s.table(t, tb, notOf(tb, erasedIn(tb)...)); got != restored[tb] {
					t.Errorf("%s changed beyond the three:\nrestored:\n%s\nafter:\n%s", tb, restored[tb], got)
				}
			}
			if n := s.count(t, "SELECT count(*) FROM users WHERE email = '"+replayUsers[3].email+"'"); n != 1 {
				t.Errorf("dora's new account (signed up again before the backup): %d rows, want 1 (kept)", n)
			}

			// The counts match SQL.
			st := er.Status
			t.Logf("replay: collections %+v; found %d, erased %d, before the backup %d, records %d; SQL counted %v",
				st.Collections, st.SubjectsFound, st.SubjectsErased, st.SubjectsBeforeBackup, st.RecordsErased, resurrected)
			if st.LedgerEntries != 3 || st.LedgerEntriesBefore != 2 || st.SubjectsFound != 3 || st.SubjectsErased != 3 || st.SubjectsBeforeBackup != 1 || st.RecordsErased != total {
				t.Errorf("status: entries %d/%d, found %d, erased %d, before %d, records %d (want 3/2, 3, 3, 1, %d)",
					st.LedgerEntries, st.LedgerEntriesBefore, st.SubjectsFound, st.SubjectsErased, st.SubjectsBeforeBackup, st.RecordsErased, total)
			}
			rc := st.Receipt
			if rc == nil || !rc.Verified || rc.Subjects != 3 || rc.Records != total || len(rc.Requests) != 3 || len(rc.SHA256) != 64 {
				t.Fatalf("receipt: %+v", rc)
			}
			for _, e := range rc.Entries {
				if e.Rows != resurrected[e.Collection] {
					t.Errorf("receipt %s: %d rows, SQL counted %d", e.Collection, e.Rows, resurrected[e.Collection])
				}
			}
			if len(rc.Entries) != 5 || resurrected["audit"] != 2 {
				t.Errorf("receipt entries: %+v", rc.Entries)
			}
			for _, sc := range st.Collections {
				if (sc.Dataset == "audit") != (sc.Collection == "audit") || sc.Matched != resurrected[sc.Collection] || sc.Erased != resurrected[sc.Collection] || sc.Scanned != rowsRestored[sc.Collection] {
					t.Errorf("collection %+v: want %d scanned, %d matched and erased", sc, rowsRestored[sc.Collection], resurrected[sc.Collection])
				}
			}
			if !hasCondition(er, retentionv1.ConditionScanned, metav1.ConditionTrue, "") {
				t.Errorf("conditions: %+v", er.Status.Conditions)
			}

			// Each re-erasure: one per subject, owned by the replay, no
			// notice sent again, its identity Secret gone.
			var children retentionv1.DeletionRequestList
			if err := env.Client.List(context.Background(), &children, client.InNamespace(ns), client.MatchingLabels{retentionv1.LabelErasureReplay: "after-restore"}); err != nil {
				t.Fatal(err)
			}
			if len(children.Items) != 3 {
				t.Fatalf("%d re-erasures, want 3", len(children.Items))
			}
			for _, dr := range children.Items {
				if !hasCondition(&dr, retentionv1.ConditionRecipientsNotified, metav1.ConditionTrue, retentionv1.ReasonNotifiedAtOriginalErasure) || dr.Status.Receipt == nil || !dr.Status.Receipt.Verified {
					t.Errorf("re-erasure %s: %+v", dr.Name, dr.Status)
				}
				var sec corev1.Secret
				if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: dr.Name + "-identities"}, &sec); err == nil {
					t.Errorf("identity Secret of %s left after it finished", dr.Name)
				}
			}
			replayNoPersonalData(t, ns)
		})
	}
}

func waitReplay(t *testing.T, ns, name string) *retentionv1.ErasureReplay {
	t.Helper()
	return waitFor(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, 120*time.Second, "replay completed",
		func(e *retentionv1.ErasureReplay) bool {
			return e.Status.Phase == retentionv1.ReplayCompleted && hasCondition(e, retentionv1.ConditionReady, metav1.ConditionTrue, "")
		})
}

// replayNoPersonalData looks for the test's identity values in the
// manager's logs, the namespace's events and every replay's status.
func replayNoPersonalData(t *testing.T, ns string) {
	t.Helper()
	var hay strings.Builder
	hay.WriteString(managerLogs.String())
	var events eventsv1.EventList
	if err := env.Client.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		fmt.Fprintf(&hay, "%s %s\n", e.Reason, e.Note)
	}
	var replays retentionv1.ErasureReplayList
	if err := env.Client.List(context.Background(), &replays, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, r := range replays.Items {
		b, _ := json.Marshal(r.Status)
		hay.Write(b)
	}
	for _, u := range replayUsers {
		for _, v := range []string{u.id, u.email} {
			if strings.Contains(hay.String(), v) {
				t.Errorf("identity %q found in logs, events or a replay's status", v)
			}
		}
	}
}

// A replay reaches only its own namespace and the named DataStore: a
// DataStore of another namespace is not found, a Dataset of another
// DataStore is refused, a backup time in the future is refused; none of
// them scans or erases anything.
func TestErasureReplayStaysInScope(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &replayStore{db: db}
	s.exec(t, `CREATE TABLE users (id text PRIMARY KEY, email text NOT NULL, phone text)`)
	create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
		Collections:  []retentionv1.Collection{{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}}}}}})
	postgresStore(t, ns, "other")
	create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "elsewhere"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "other"},
		Collections:  []retentionv1.Collection{{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}}}}}})
	foreign := namespace(t)
	past := metav1.Time{Time: time.Now().Add(-time.Hour)}
	cases := []struct {
		ns, name, reason string
		spec             retentionv1.ErasureReplaySpec
	}{
		{foreign, "other-namespace", retentionv1.ReasonDataStoreNotReady, retentionv1.ErasureReplaySpec{DataStore: "db", BackupTime: past}},
		{ns, "other-store", retentionv1.ReasonInvalidSpec, retentionv1.ErasureReplaySpec{DataStore: "db", BackupTime: past, Datasets: []retentionv1.ObjectName{"elsewhere"}}},
		{ns, "missing-dataset", retentionv1.ReasonDatasetNotFound, retentionv1.ErasureReplaySpec{DataStore: "db", BackupTime: past, Datasets: []retentionv1.ObjectName{"nope"}}},
		{ns, "future", retentionv1.ReasonInvalidSpec, retentionv1.ErasureReplaySpec{DataStore: "db", BackupTime: metav1.Time{Time: time.Now().Add(time.Hour)}}},
	}
	for _, c := range cases {
		create(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: c.name}, Spec: c.spec})
	}
	for _, c := range cases {
		er := waitFor(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: c.name}}, 60*time.Second, "stalled",
			func(e *retentionv1.ErasureReplay) bool {
				return hasCondition(e, retentionv1.ConditionStalled, metav1.ConditionTrue, c.reason)
			})
		if er.Status.StartTime != nil || len(er.Status.Collections) != 0 || len(er.Status.Requests) != 0 {
			t.Errorf("%s scanned or erased: %+v", c.name, er.Status)
		}
	}
	// The spec is immutable.
	var er retentionv1.ErasureReplay
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "future"}, &er); err != nil {
		t.Fatal(err)
	}
	er.Spec.BackupTime = past
	if err := env.Client.Update(context.Background(), &er); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("changing the spec: %v; want refused as immutable", err)
	}
	var drs retentionv1.DeletionRequestList
	if err := env.Client.List(context.Background(), &drs); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(drs.Items, func(d retentionv1.DeletionRequest) bool { return d.Namespace == ns || d.Namespace == foreign }) {
		t.Error("a replay out of scope created a DeletionRequest")
	}
}

// A store that cannot be scanned (Redis) is reported, never called clean:
// the ledger holds a subject erased after the backup, the replay completes
// with Scanned=False naming the Dataset, and erases nothing.
func TestErasureReplayReportsAStoreItCannotScan(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	redisSessions(t, ns, "rp_gil_7738", "rp_hal_7739")
	create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sessions"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "redis"},
		Collections: []retentionv1.Collection{{Name: "sessions", KeyPattern: "session:{user_id}:*", TimestampField: "ts",
			Identities: []retentionv1.IdentityField{{Type: "user_id"}}}}}})
	// The ledger entry of an erasure completed after the backup.
	done := metav1.Now()
	line, err := ledger.NewLine(testDigestKey, "gil", &retentionv1.Receipt{SubjectDigest: "hmac-sha256:00", SHA256: strings.Repeat("0", 64), CompletedAt: &done,
		Entries: []retentionv1.ReceiptEntry{{Dataset: "sessions", Collection: "sessions", Action: retentionv1.ActionDelete, Rows: 2}}},
		map[string][]string{"user_id": {"rp_gil_7738"}})
	if err != nil {
		t.Fatal(err)
	}
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lethe-erasure-ledger-20260101-0", Labels: map[string]string{retentionv1.LabelLedger: "true"}},
		Data: map[string]string{"gil": line}})
	create(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis-restored"},
		Spec: retentionv1.ErasureReplaySpec{DataStore: "redis", BackupTime: metav1.Time{Time: time.Now().Add(-time.Hour)}}})
	er := waitReplay(t, ns, "redis-restored")
	if !hasCondition(er, retentionv1.ConditionScanned, metav1.ConditionFalse, retentionv1.ReasonNotScannable) ||
		len(er.Status.NotScanned) != 1 || er.Status.NotScanned[0].Dataset != "sessions" || er.Status.LedgerEntries != 1 || len(er.Status.Requests) != 0 {
		t.Fatalf("status: %+v", er.Status)
	}
	if c := condition(er, retentionv1.ConditionReady); c == nil || !strings.Contains(c.Message, "could not be scanned") {
		t.Errorf("Ready does not say a Dataset was not scanned: %+v", c)
	}
}

// A re-erasure goes through the normal path: a legal hold on one subject
// holds its re-erasure (and the replay waits, saying so) while the other
// subject is erased; once the hold is released the replay completes. The
// ledger entries here stand for erasures completed after the backup.
func TestErasureReplayWaitsForALegalHold(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &replayStore{db: db}
	s.exec(t, `CREATE TABLE users (id text PRIMARY KEY, email text NOT NULL)`,
		`INSERT INTO users VALUES ('rp_ivy_7740', 'rp-ivy-7740@example.org'), ('rp_jo_7741', 'rp-jo-7741@example.org'), ('rp_kim_7742', 'rp-kim-7742@example.org')`)
	create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
		Collections:  []retentionv1.Collection{{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}}}}})
	done := metav1.Now()
	data := map[string]string{}
	for _, who := range []string{"rp_ivy_7740", "rp_jo_7741"} {
		line, err := ledger.NewLine(testDigestKey, strings.ReplaceAll(who, "_", "-"), &retentionv1.Receipt{SubjectDigest: "hmac-sha256:00", SHA256: strings.Repeat("0", 64), CompletedAt: &done,
			Entries: []retentionv1.ReceiptEntry{{Dataset: "app", Collection: "users", Action: retentionv1.ActionDelete, Rows: 1}}},
			map[string][]string{"user_id": {who}})
		if err != nil {
			t.Fatal(err)
		}
		data[strings.ReplaceAll(who, "_", "-")] = line
	}
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lethe-erasure-ledger-20260101-0", Labels: map[string]string{retentionv1.LabelLedger: "true"}}, Data: data})
	hold := &retentionv1.LegalHold{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "case-7"},
		Spec: retentionv1.LegalHoldSpec{Reason: "Case 7", Subjects: []retentionv1.SubjectIdentity{{Type: "user_id", Value: "rp_jo_7741"}}}}
	create(t, hold)

	create(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held"},
		Spec: retentionv1.ErasureReplaySpec{DataStore: "db", BackupTime: metav1.Time{Time: time.Now().Add(-time.Hour)}}})
	key := &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "held"}}
	waiting := waitFor(t, key, 90*time.Second, "waiting for the held re-erasure", func(e *retentionv1.ErasureReplay) bool {
		c := condition(e, retentionv1.ConditionReconciling)
		return e.Status.Phase == retentionv1.ReplayErasing && c != nil && strings.Contains(c.Message, "1 of 2 re-erasures finished") && strings.Contains(c.Message, "(Held)")
	})
	if n := s.count(t, "SELECT count(*) FROM users WHERE id IN ('rp_ivy_7740', 'rp_jo_7741')"); n != 1 {
		t.Fatalf("%d of ivy (erased) and jo (held) left; want 1: %+v", n, waiting.Status)
	}
	patch := client.MergeFrom(hold.DeepCopy())
	hold.Spec.Released = true
	if err := env.Client.Patch(context.Background(), hold, patch); err != nil {
		t.Fatal(err)
	}
	er := waitReplay(t, ns, "held")
	if n := s.count(t, "SELECT count(*) FROM users"); n != 1 || er.Status.RecordsErased != 2 || er.Status.SubjectsErased != 2 || er.Status.Receipt == nil || !er.Status.Receipt.Verified {
		t.Fatalf("%d users left (want kim only); status %+v", n, er.Status)
	}
}

// The scan keeps to the DataStore's maxBatchesPerSecond, and a manager
// stopped mid-scan leaves a replay the next manager scans again from the
// start and completes, with counts that match the table.
func TestErasureReplayScanIsPacedAndSurvivesARestart(t *testing.T) {
	first := startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := postgresStoreWith(t, ns, "db", func(s *retentionv1.DataStoreSpec) { s.Limits.MaxBatchesPerSecond = 5 })
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &replayStore{db: db}
	s.exec(t, `CREATE TABLE users (id text PRIMARY KEY, email text NOT NULL)`,
		`INSERT INTO users SELECT 'rp_u' || g, 'rp-u' || g || '@example.org' FROM generate_series(1, 60) g`)
	create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
		Collections:  []retentionv1.Collection{{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}}}}})
	done := metav1.Now()
	line, err := ledger.NewLine(testDigestKey, "two", &retentionv1.Receipt{SubjectDigest: "hmac-sha256:00", SHA256: strings.Repeat("0", 64), CompletedAt: &done,
		Entries: []retentionv1.ReceiptEntry{{Dataset: "app", Collection: "users", Action: retentionv1.ActionDelete, Rows: 1}}},
		map[string][]string{"email": {"rp-u7@example.org"}, "user_id": {"rp_u7"}})
	if err != nil {
		t.Fatal(err)
	}
	// A line changed by hand (its Datasets widened; the MAC no longer
	// verifies) and a line without a MAC, as a namespace editor could write
	// them: neither is replayed.
	other, err := ledger.NewLine(testDigestKey, "forged", &retentionv1.Receipt{SubjectDigest: "hmac-sha256:00", SHA256: strings.Repeat("0", 64), CompletedAt: &done,
		Entries: []retentionv1.ReceiptEntry{{Dataset: "billing", Collection: "invoices", Action: retentionv1.ActionDelete, Rows: 1}}},
		map[string][]string{"user_id": {"rp_u9"}})
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(other, `"datasets":["billing"]`, `"datasets":["app","billing"]`, 1)
	e, err := ledger.ParseLine(other)
	if err != nil || forged == other {
		t.Fatal("cannot forge the line", err)
	}
	e.Request, e.MAC, e.Datasets, e.Identities = "unsigned", "", nil, []string{"user_id=" + digest.Identity(testDigestKey, "user_id", "rp_u11")}
	unsigned, _ := json.Marshal(e)
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lethe-erasure-ledger-20260101-0", Labels: map[string]string{retentionv1.LabelLedger: "true"}},
		Data: map[string]string{"two": line, "forged": forged, "unsigned": string(unsigned)}})

	// 60 records in pages of 4 at 5 pages a second: about 3 s.
	create(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "paced"},
		Spec: retentionv1.ErasureReplaySpec{DataStore: "db", BackupTime: metav1.Time{Time: time.Now().Add(-time.Hour)}, BatchSize: ptr.To(int32(4))}})
	waitFor(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "paced"}}, 60*time.Second, "scanning",
		func(e *retentionv1.ErasureReplay) bool { return e.Status.Phase == retentionv1.ReplayScanning })
	time.Sleep(500 * time.Millisecond)
	first.stop()
	if n := s.count(t, "SELECT count(*) FROM users"); n != 60 {
		t.Fatalf("%d users after the first manager stopped mid-scan; want 60", n)
	}

	start := time.Now()
	startManager(t, controllers.Options{})
	er := waitReplay(t, ns, "paced")
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("scanned 15 pages in %s at 5 pages a second", took)
	}
	if er.Status.LedgerEntriesIgnored != 2 || er.Status.LedgerEntries != 1 {
		t.Errorf("ledger: %d replayed, %d ignored; want 1 and 2 (a changed line, an unsigned one)", er.Status.LedgerEntries, er.Status.LedgerEntriesIgnored)
	}
	if n := s.count(t, "SELECT count(*) FROM users WHERE id = 'rp_u7'"); n != 0 || s.count(t, "SELECT count(*) FROM users") != 59 {
		t.Fatalf("after the replay: %d rows of rp_u7, %d users", n, s.count(t, "SELECT count(*) FROM users"))
	}
	st := er.Status
	if len(st.Collections) != 1 || st.Collections[0].Scanned != 60 || st.Collections[0].Matched != 1 || st.Collections[0].Erased != 1 || st.SubjectsErased != 1 || st.RecordsErased != 1 {
		t.Fatalf("status after a restart: %+v", st)
	}
}

// A Secret someone else created under the name the replay gives a
// re-erasure's identities (the name is predictable: the replay's name and a
// hash of ledger request names) is never passed to an erasure: the replay
// stalls, creates no DeletionRequest, and nobody is erased — neither the
// subject the ledger names nor the one the planted Secret names.
func TestErasureReplayRefusesASecretItDidNotCreate(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &replayStore{db: db}
	s.exec(t, `CREATE TABLE users (id text PRIMARY KEY, email text NOT NULL)`,
		`INSERT INTO users VALUES ('rp_lou_7750', 'rp-lou-7750@example.org'), ('rp_max_7751', 'rp-max-7751@example.org')`)
	create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
		Collections:  []retentionv1.Collection{{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}}}}})
	done := metav1.Now()
	line, err := ledger.NewLine(testDigestKey, "erase-lou", &retentionv1.Receipt{SubjectDigest: "hmac-sha256:00", SHA256: strings.Repeat("0", 64), CompletedAt: &done,
		Entries: []retentionv1.ReceiptEntry{{Dataset: "app", Collection: "users", Action: retentionv1.ActionDelete, Rows: 1}}},
		map[string][]string{"user_id": {"rp_lou_7750"}})
	if err != nil {
		t.Fatal(err)
	}
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lethe-erasure-ledger-20260101-0", Labels: map[string]string{retentionv1.LabelLedger: "true"}},
		Data: map[string]string{"erase-lou": line}})
	child := replay.ChildName("squat", replay.Subject{Entries: []string{"erase-lou"}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: child + "-identities", Labels: map[string]string{retentionv1.LabelSecretConsent: "true"}},
		StringData: map[string]string{"user_id": "rp_max_7751"}})

	create(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "squat"},
		Spec: retentionv1.ErasureReplaySpec{DataStore: "db", BackupTime: metav1.Time{Time: time.Now().Add(-time.Hour)}}})
	key := &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "squat"}}
	er := waitFor(t, key, 90*time.Second, "Stalled InvalidSpec", func(e *retentionv1.ErasureReplay) bool {
		return hasCondition(e, retentionv1.ConditionStalled, metav1.ConditionTrue, retentionv1.ReasonInvalidSpec)
	})
	if msg := condition(er, retentionv1.ConditionStalled).Message; !strings.Contains(msg, child+"-identities is not this replay's") {
		t.Errorf("Stalled message %q does not name the Secret", msg)
	}
	var requests retentionv1.DeletionRequestList
	if err := env.Client.List(context.Background(), &requests, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(requests.Items) != 0 {
		t.Errorf("the replay created %d DeletionRequests with a Secret it did not create", len(requests.Items))
	}
	holdsStillReplay := func() {
		if n := s.count(t, "SELECT count(*) FROM users"); n != 2 {
			t.Fatalf("%d of 2 users left: the replay erased with a Secret it did not create", n)
		}
	}
	holdsStillReplay()
	time.Sleep(2 * time.Second)
	holdsStillReplay()
}

// A DeletionRequest a user labels as a replay's re-erasure, with a
// controller reference to the replay, is not one: the replay does not list
// it, so its Recipients are notified as for any erasure (never skipped as
// NotifiedAtOriginalErasure).
func TestErasureReplayForgedChildIsNotified(t *testing.T) {
	startManager(t, controllers.Options{})
	ns := namespace(t)
	pg := postgresStore(t, ns, "db")
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &replayStore{db: db}
	s.exec(t, `CREATE TABLE users (id text PRIMARY KEY, email text NOT NULL)`,
		`INSERT INTO users VALUES ('rp_ned_7760', 'rp-ned-7760@example.org')`)
	create(t, &retentionv1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}, Spec: retentionv1.DatasetSpec{
		DataStoreRef: retentionv1.LocalObjectReference{Name: "db"},
		Collections:  []retentionv1.Collection{{Name: "users", Identities: []retentionv1.IdentityField{{Type: "user_id", Field: "id"}, {Type: "email", Field: "email"}}}}}})
	create(t, &retentionv1.ErasureReplay{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "real"},
		Spec: retentionv1.ErasureReplaySpec{DataStore: "db", BackupTime: metav1.Time{Time: time.Now().Add(-time.Hour)}}})
	er := waitReplay(t, ns, "real")

	dr := &retentionv1.DeletionRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged", Labels: map[string]string{retentionv1.LabelErasureReplay: "real"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: retentionv1.GroupVersion.String(), Kind: "ErasureReplay", Name: er.Name, UID: er.UID, Controller: ptr.To(true)}}},
		Spec: retentionv1.DeletionRequestSpec{Reason: retentionv1.ReasonSubjectRequest,
			Subject: retentionv1.Subject{Identities: []retentionv1.SubjectIdentity{{Type: "user_id", Value: "rp_ned_7760"}}}},
	}
	create(t, dr)
	done := waitFor(t, &retentionv1.DeletionRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged"}}, 90*time.Second, "Completed with RecipientsNotified",
		func(d *retentionv1.DeletionRequest) bool {
			return d.Status.Phase == retentionv1.RequestCompleted && condition(d, retentionv1.ConditionRecipientsNotified) != nil
		})
	if c := condition(done, retentionv1.ConditionRecipientsNotified); c.Reason == retentionv1.ReasonNotifiedAtOriginalErasure {
		t.Errorf("a request that only claims to be a re-erasure skipped its notices: %+v", c)
	}
}
