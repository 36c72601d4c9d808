package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/lethe-dev/lethe/internal/datastore"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"users":                        "`users`",
		"users`; DROP TABLE users; --": "`users``; DROP TABLE users; --`",
		"a``b":                         "`a````b`",
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 65), "a\x00b", "trailing ", "\xff", "emoji😀"} {
		if err := checkIdent("op", "table", bad); !errors.Is(err, datastore.ErrInvalid) {
			t.Errorf("checkIdent(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := checkIdent("op", "table", "users`; DROP TABLE users; --"); err != nil {
		t.Errorf("a backtick is a legal (quoted) name character: %v", err)
	}
}

func TestKeyPredicates(t *testing.T) {
	key := []*column{{name: "a", valueKind: kindInt}, {name: "b", valueKind: kindDecimal}}
	got, args := keyAfter("t", key, []any{int64(1), "2.5"})
	want := "((`t`.`a` > ?) OR (`t`.`a` = ? AND `t`.`b` > CAST(? AS DECIMAL(65,30))))"
	if got != want || fmt.Sprint(args) != "[1 1 2.5]" {
		t.Errorf("keyAfter = %s %v", got, args)
	}
	got, args = keyAtMost("t", key, []any{int64(1), "2.5"})
	want = "((`t`.`a` < ?) OR (`t`.`a` = ? AND `t`.`b` < CAST(? AS DECIMAL(65,30))) OR ((`t`.`a` = ? AND `t`.`b` = CAST(? AS DECIMAL(65,30)))))"
	if got != want || len(args) != 5 {
		t.Errorf("keyAtMost = %s %v", got, args)
	}
}

func TestCutoffArg(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	c := time.Date(2024, 7, 1, 10, 0, 0, 1, time.UTC) // 1ns past: rounds up to the next µs
	for _, tc := range []struct {
		kind valueKind
		loc  *time.Location
		want string
	}{
		{kindDatetime, time.UTC, "2024-07-01 10:00:00.000001"},
		{kindDatetime, berlin, "2024-07-01 12:00:00.000001"},
		{kindTimestamp, berlin, "2024-07-01 10:00:00.000001"},
		{kindDate, berlin, "2024-07-02"},
	} {
		if got := cutoffArg(&column{valueKind: tc.kind}, c, tc.loc); got != tc.want {
			t.Errorf("kind %d in %s: %s, want %s", tc.kind, tc.loc, got, tc.want)
		}
	}
	exact := time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
	if got := cutoffArg(&column{valueKind: kindDate}, exact, time.UTC); got != "2024-07-01" {
		t.Errorf("midnight: %s", got)
	}
}

// Server messages quote values; Error never includes them.
func TestErrorHidesServerMessage(t *testing.T) {
	for n, class := range map[uint16]error{
		1045: datastore.ErrAuthentication, 1146: datastore.ErrNotFound, 1054: datastore.ErrNotFound,
		1205: datastore.ErrUnavailable, 1213: datastore.ErrUnavailable, 1969: datastore.ErrUnavailable,
		3024: datastore.ErrUnavailable, 1062: datastore.ErrInvalid, 1451: datastore.ErrInvalid,
	} {
		err := classify("delete batch on `users`", &gomysql.MySQLError{Number: n, Message: "Duplicate entry 'alice@example.com' for key"})
		if !errors.Is(err, class) {
			t.Errorf("%d: %v, want %v", n, err, class)
		}
		if strings.Contains(err.Error(), "alice") {
			t.Errorf("%d: message leaks a value: %v", n, err)
		}
		var me *gomysql.MySQLError
		if !errors.As(err, &me) {
			t.Errorf("%d: original error not reachable", n)
		}
	}
	err := classify("x", fmt.Errorf("sql: Scan error on column index 0: converting \"alice@example.com\" to int64"))
	if !errors.Is(err, datastore.ErrInvalid) || strings.Contains(err.Error(), "alice") {
		t.Errorf("client error: %v", err)
	}
	err = classify("x", context.Canceled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
}

// The driver is safe for concurrent use: purges of different tables,
// Describe and Count at the same time, with the race detector.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	for i := range 4 {
		e.exec(fmt.Sprintf("CREATE TABLE t%d (id INT PRIMARY KEY, ts DATETIME NOT NULL)", i),
			fmt.Sprintf("INSERT INTO t%d SELECT seq, '2020-01-01' + INTERVAL seq HOUR FROM seq_1_to_2000", i))
	}
	d := e.driver()
	cutoff := time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 4 {
		op := datastore.Operation{Collection: datastore.Collection{Name: fmt.Sprintf("t%d", i), TimestampField: "ts"},
			Delete: true, Cutoff: &cutoff, BatchSize: 50}
		wg.Add(2)
		go func() {
			defer wg.Done()
			cursor := ""
			for {
				b, err := d.Execute(context.Background(), op, cursor)
				if err != nil {
					errs <- err
					return
				}
				cursor = b.Cursor
				if b.Done {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := d.Describe(context.Background(), op.Collection); err != nil {
				errs <- err
			}
			if _, err := d.Count(context.Background(), op); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 4 {
		if n := e.count(fmt.Sprintf("SELECT COUNT(*) FROM t%d WHERE ts < '2020-02-01'", i)); n != 0 {
			t.Errorf("t%d: %d old rows left", i, n)
		}
	}
}
