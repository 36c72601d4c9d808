package demo

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"text/template"

	"github.com/jackc/pgx/v5"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

// StorePostgres names the PostgreSQL shop database in counts.
const StorePostgres = "PostgreSQL"

// Tables of the shop database, in the order the demo prints them.
var Tables = []string{"users", "devices", "browsing_logs", "orders", "order_items", "support_messages"}

// Subjects the samples name.
const (
	AdaUserID   = 100042 // cancels her account; under legal hold
	MinorUserID = 100271 // a 14-year-old; erased at once
)

// HeldUserIDs and HeldEmails are the subjects of LegalHold case-2026-sh-0142
// (config/samples/secrets.yaml).
var (
	HeldUserIDs = []int64{100042, 100317}
	HeldEmails  = []string{"grace@example.com"}
)

// loadShop creates the schema and generates the data.
func loadShop(ctx context.Context, url string, users int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, f := range []string{"schema.sql", "data.sql", "constraints.sql"} {
		b, err := sqlFiles.ReadFile("sql/" + f)
		if err != nil {
			return err
		}
		t, err := template.New(f).Parse(string(b))
		if err != nil {
			return err
		}
		var sql bytes.Buffer
		if err := t.Execute(&sql, struct{ Users int }{users}); err != nil {
			return err
		}
		// No arguments: the simple protocol, so one Exec runs the whole
		// file in one implicit transaction (one now() for every record).
		if _, err := conn.Exec(ctx, sql.String()); err != nil {
			return fmt.Errorf("sql/%s: %w", f, err)
		}
	}
	return nil
}

// TableCount is what one table (key pattern, prefix) holds, read from its
// store.
type TableCount struct {
	Store string // PostgreSQL, Redis, S3, MariaDB
	Table string
	Rows  int64
	// Anonymized counts rows whose personal fields were rewritten by an
	// anonymization strategy (-1: the table is never anonymized).
	Anonymized int64
}

// Promise is one retention promise of the privacy policy with the records
// that break it: past their retention period and still identifying someone.
type Promise struct {
	Name  string
	Store string
	Table string
	// Violations counts records past the period that are still there (for a
	// delete) or still identifying (for an anonymization).
	Violations int64
	// Held counts those of subjects under the legal hold, which Lethe must
	// leave alone.
	Held int64
}

// SubjectRows counts, per table, the records that still identify one person.
type SubjectRows struct {
	Who    string
	UserID int64
	// Rows by Key(store, table).
	Rows map[string]int64
}

// Key names a table of a store in SubjectRows.Rows.
func Key(store, table string) string { return store + "/" + table }

// Snapshot is the database at one moment.
type Snapshot struct {
	Tables   []TableCount
	Promises []Promise
	Subjects []SubjectRows
}

// Table returns the count of a table of the PostgreSQL shop database.
func (s Snapshot) Table(name string) TableCount { return s.TableOf(StorePostgres, name) }

// TableOf returns the count of a table of a store.
func (s Snapshot) TableOf(store, name string) TableCount {
	for _, t := range s.Tables {
		if t.Store == store && t.Table == name {
			return t
		}
	}
	return TableCount{Store: store, Table: name, Anonymized: -1}
}

// SQL predicates over the shop tables. ipGeneralized is true for an address
// that Generalize produced (the /24 or /48 network address): the generated
// data never holds one.
const ipGeneralized = `(%[1]s = set_masklen(network(set_masklen(%[1]s, CASE family(%[1]s) WHEN 4 THEN 24 ELSE 48 END)), masklen(%[1]s)))`

func ipGen(col string) string { return fmt.Sprintf(ipGeneralized, col) }

// Anonymized fields no longer hold what the generated data holds: a device
// identifier that is not a UUID, a contact address that is not an address,
// whatever strategy the Dataset uses.
const (
	devicesAnonymized = `device_id !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' AND user_agent IS NULL AND (ip_address IS NULL OR ` + ipGeneralizedDevices + `)`
	supportAnonymized = `contact_email !~ '^[a-z0-9.]+@example\.(com|net|org)$' AND body !~ '[A-Za-z] [A-Za-z]'`
	// ipGeneralizedDevices is ipGen("ip_address"), spelled out for a constant.
	ipGeneralizedDevices = `(ip_address = set_masklen(network(set_masklen(ip_address, CASE family(ip_address) WHEN 4 THEN 24 ELSE 48 END)), masklen(ip_address)))`
)

var (
	// Anonymized rows per table: every field the policy's strategies rewrite
	// was rewritten.
	anonymizedSQL = map[string]string{
		"devices":          devicesAnonymized,
		"browsing_logs":    ipGen("ip_address"),
		"orders":           ipGen("buyer_ip") + ` OR (user_id IS NULL AND shipping_name = '[removed]')`,
		"support_messages": supportAnonymized,
	}
	heldSQL = map[string]string{
		"orders":           `user_id = ANY($1) OR user_id IN (SELECT id FROM users WHERE email = ANY($2))`,
		"support_messages": `user_id = ANY($1) OR contact_email = ANY($2) OR user_id IN (SELECT id FROM users WHERE email = ANY($2))`,
	}
	// Promises, as SQL conditions on records that break them. Ages use
	// now() in UTC, as Lethe's cutoffs do; viewed_at is Beijing time.
	promiseSQL = []struct{ name, table, where string }{
		{"browsing history deleted after 180 days", "browsing_logs",
			`viewed_at < (now() AT TIME ZONE 'Asia/Shanghai') - interval '180 days'`},
		{"device identifiers anonymized after 90 days", "devices",
			`last_seen_at < now() - interval '90 days' AND NOT (` + devicesAnonymized + `)`},
		{"device identifiers anonymized after 90 days", "browsing_logs",
			`viewed_at < (now() AT TIME ZONE 'Asia/Shanghai') - interval '90 days' AND NOT ` + ipGen("ip_address")},
		{"device identifiers anonymized after 90 days", "orders",
			`created_at < now() - interval '90 days' AND buyer_ip IS NOT NULL AND NOT ` + ipGen("buyer_ip")},
		{"support messages anonymized after 180 days", "support_messages",
			`created_at < now() - interval '180 days' AND NOT (` + supportAnonymized + `)`},
		{"orders unlinked from the buyer after 3 years", "orders",
			`created_at < now() - interval '3 years' AND (user_id IS NOT NULL OR shipping_name IS DISTINCT FROM '[removed]')`},
	}
)

// subjectSQL counts the records that still identify a user: $1 is the user
// id, $2 the email and phone the user had when the demo started.
var subjectSQL = map[string]string{
	"users":         `id = $1`,
	"devices":       `user_id = $1`,
	"browsing_logs": `user_id = $1`,
	"orders":        `user_id = $1 OR shipping_phone = ANY($2)`,
	"order_items": `order_id IN (SELECT id FROM orders WHERE user_id = $1 OR shipping_phone = ANY($2))
		AND gift_message IS NOT NULL`,
	"support_messages": `user_id = $1 OR contact_email = ANY($2)`,
}

// subject is a person whose records the demo follows.
type subject struct {
	who      string
	userID   int64
	contacts []string // email and phone at load time
}

func loadSubjects(ctx context.Context, conn *pgx.Conn) ([]subject, error) {
	subs := []subject{
		{who: "Ada (account cancellation, under legal hold)", userID: AdaUserID},
		{who: "Xiao Ming (a minor)", userID: MinorUserID},
	}
	for i := range subs {
		var email, phone string
		if err := conn.QueryRow(ctx, `SELECT email, phone FROM users WHERE id = $1`, subs[i].userID).Scan(&email, &phone); err != nil {
			return nil, fmt.Errorf("reading user %d: %w", subs[i].userID, err)
		}
		subs[i].contacts = []string{email, phone}
	}
	return subs, nil
}

// pgSnapshot reads every count from the shop database, in one
// repeatable-read transaction so the numbers are of one instant.
func pgSnapshot(ctx context.Context, conn *pgx.Conn, subs []subject) (Snapshot, error) {
	var s Snapshot
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return s, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }() // after Commit: a no-op
	if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'"); err != nil {
		return s, err
	}
	for _, t := range Tables {
		tc := TableCount{Store: StorePostgres, Table: t, Anonymized: -1}
		q := fmt.Sprintf(`SELECT count(*) FROM %s`, pgx.Identifier{t}.Sanitize())
		if a, ok := anonymizedSQL[t]; ok {
			q = fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE %s) FROM %s`, a, pgx.Identifier{t}.Sanitize())
			err = tx.QueryRow(ctx, q).Scan(&tc.Rows, &tc.Anonymized)
		} else {
			err = tx.QueryRow(ctx, q).Scan(&tc.Rows)
		}
		if err != nil {
			return s, fmt.Errorf("counting %s: %w", t, err)
		}
		s.Tables = append(s.Tables, tc)
	}
	for _, p := range promiseSQL {
		pr := Promise{Name: p.name, Store: StorePostgres, Table: p.table}
		held, args := "false", []any(nil)
		if h, ok := heldSQL[p.table]; ok {
			held, args = h, []any{HeldUserIDs, HeldEmails}
		}
		q := fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE %s) FROM %s WHERE %s`, held, pgx.Identifier{p.table}.Sanitize(), p.where)
		if err := tx.QueryRow(ctx, q, args...).Scan(&pr.Violations, &pr.Held); err != nil {
			return s, fmt.Errorf("checking %q on %s: %w", p.name, p.table, err)
		}
		s.Promises = append(s.Promises, pr)
	}
	for _, sub := range subs {
		sr := SubjectRows{Who: sub.who, UserID: sub.userID, Rows: map[string]int64{}}
		for _, t := range Tables {
			var n int64
			q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s`, pgx.Identifier{t}.Sanitize(), subjectSQL[t])
			args := []any{sub.userID}
			if t != "users" && t != "devices" && t != "browsing_logs" {
				args = append(args, sub.contacts)
			}
			if err := tx.QueryRow(ctx, q, args...).Scan(&n); err != nil {
				return s, fmt.Errorf("counting records of user %d in %s: %w", sub.userID, t, err)
			}
			sr.Rows[Key(StorePostgres, t)] = n
		}
		s.Subjects = append(s.Subjects, sr)
	}
	return s, nil
}
