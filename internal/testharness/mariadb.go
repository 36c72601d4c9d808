package testharness

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/servers"
)

// MySQL is a fresh, empty MariaDB (MySQL-compatible) database.
type MySQL struct {
	Host     string
	Port     int
	User     string // has ALL PRIVILEGES WITH GRANT OPTION on the throwaway server
	Password string
	Database string
	// DSN is for go-sql-driver/mysql (sql.Open("mysql", DSN)), with
	// parseTime=true&multiStatements=false.
	DSN string
}

var myLazy lazy[*servers.MariaDB]

// MariaDB returns a fresh database on a throwaway MariaDB server (or on the
// server of LETHE_TEST_MYSQL_DSN). The server starts on first use.
func MariaDB(tb testing.TB) MySQL {
	tb.Helper()
	requireMain(tb)
	srv := myLazy.get(tb, "MariaDB", startMariaDB)

	name := uniqueName(tb, "lethe", '_', 64)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.CreateDatabase(ctx, name); err != nil {
		tb.Fatalf("testharness: MariaDB: creating database %s: %v", name, err)
	}
	return MySQL{
		Host: srv.Host, Port: srv.Port, User: srv.User, Password: srv.Password,
		Database: name, DSN: srv.DSN(name),
	}
}

func startMariaDB() (*servers.MariaDB, error) {
	ctx := context.Background()
	if dsn := os.Getenv("LETHE_TEST_MYSQL_DSN"); dsn != "" {
		srv, err := servers.ConnectMariaDB(ctx, dsn)
		if err != nil {
			return nil, fmtEnvErr("LETHE_TEST_MYSQL_DSN", err)
		}
		return srv, nil
	}
	g, err := theGroup()
	if err != nil {
		return nil, err
	}
	srv, err := g.StartMariaDB(ctx)
	return srv, orSet(err, "LETHE_TEST_MYSQL_DSN")
}
