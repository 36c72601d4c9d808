package postgres

import (
	"errors"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// states maps the SQLSTATEs this driver tells apart to their kind and
// reason; classes maps the other codes by their class (first two
// characters). Anything else is a server error (KindInvalid).
var (
	states = map[string]datastore.Code{
		pgerrcode.InvalidPassword:                   {Kind: datastore.KindAuthentication, Reason: "authentication failed"},
		pgerrcode.InvalidAuthorizationSpecification: {Kind: datastore.KindAuthentication, Reason: "authentication failed"},
		pgerrcode.InsufficientPrivilege:             {Kind: datastore.KindPermission, Reason: "permission denied"},
		pgerrcode.UndefinedTable:                    {Kind: datastore.KindNotFound, Reason: "undefined table"},
		pgerrcode.UndefinedColumn:                   {Kind: datastore.KindNotFound, Reason: "undefined column"},
		pgerrcode.InvalidSchemaName:                 {Kind: datastore.KindNotFound, Reason: "undefined schema"},
		pgerrcode.InvalidCatalogName:                {Kind: datastore.KindNotFound, Reason: "database does not exist"},
		pgerrcode.QueryCanceled:                     {Kind: datastore.KindStatementTimeout, Reason: "statement timeout or cancelled"},
		pgerrcode.LockNotAvailable:                  {Kind: datastore.KindLockTimeout, Reason: "lock timeout"},
		pgerrcode.SerializationFailure:              {Kind: datastore.KindConflict, Reason: "serialization failure"},
		pgerrcode.DeadlockDetected:                  {Kind: datastore.KindConflict, Reason: "deadlock detected"},
		pgerrcode.AdminShutdown:                     {Kind: datastore.KindServer, Reason: "server shutting down (admin shutdown)"},
		pgerrcode.CrashShutdown:                     {Kind: datastore.KindServer, Reason: "server crashed"},
		pgerrcode.CannotConnectNow:                  {Kind: datastore.KindServer, Reason: "server not accepting connections yet"},
		pgerrcode.ReadOnlySQLTransaction:            {Kind: datastore.KindReadOnly, Reason: "read-only transaction (standby or read-only server)"},
		pgerrcode.ForeignKeyViolation:               {Kind: datastore.KindForeignKey, Reason: "foreign key violation: delete referencing rows first"},
	}
	classes = map[string]datastore.Code{
		pgerrcode.ConnectionException[:2]:              {Kind: datastore.KindConnection, Reason: "connection exception"},
		pgerrcode.InsufficientResources[:2]:            {Kind: datastore.KindResources, Reason: "insufficient resources"},
		pgerrcode.SystemError[:2]:                      {Kind: datastore.KindServer, Reason: "system error"},
		pgerrcode.DataException[:2]:                    {Kind: datastore.KindData, Reason: "data exception (a value does not fit the column type)"},
		pgerrcode.IntegrityConstraintViolation[:2]:     {Kind: datastore.KindConstraint, Reason: "integrity constraint violation"},
		pgerrcode.SyntaxErrorOrAccessRuleViolation[:2]: {Kind: datastore.KindStatement, Reason: "syntax error or access rule violation"},
	}
)

// state looks a SQLSTATE up in states, then classes.
func state(code string) datastore.Code {
	if c, ok := states[code]; ok {
		return c
	}
	if len(code) >= 2 {
		if c, ok := classes[code[:2]]; ok {
			return c
		}
	}
	return datastore.Code{Kind: datastore.KindInvalid, Reason: "server error"}
}

// library is pgx as datastore.Library.Classify needs to know it. The
// message names the SQLSTATE and the schema objects of a server error;
// never the server's message or detail, which can quote row values.
var library = datastore.Library{
	Name: "postgres",
	Server: func(err error) (*datastore.Error, bool) {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return nil, false
		}
		c := state(pe.Code)
		return &datastore.Error{Kind: c.Kind, Reason: c.Reason, SQLState: pe.Code,
			Table: pe.TableName, Column: pe.ColumnName, Constraint: pe.ConstraintName}, true
	},
	Rules: []datastore.Rule{
		datastore.TimedOut(pgconn.Timeout),
		datastore.Refused(connectDetail),
		datastore.Lost(pgconn.ErrConnClosed),
		datastore.LookupFailed(),
		datastore.ConnectFailed(connectDetail, func(err error) bool {
			var ce *pgconn.ConnectError
			return errors.As(err, &ce)
		}),
		{Match: pgconn.SafeToRetry, Kind: datastore.KindConnection, Reason: "connection busy or closed"},
	},
}

// connectDetail is the text of a dial, DNS or TLS error: host names and
// ports, never row values, and what an operator needs to fix. A
// ConnectError's own text names the user from the credentials Secret: only
// what it wraps is kept.
func connectDetail(err error) string {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && errors.Unwrap(ce) != nil {
		return errors.Unwrap(ce).Error()
	}
	return err.Error()
}

// classify turns an error from pgx into a *datastore.Error (see
// datastore.Library.Classify).
func classify(op string, err error) error {
	return library.Classify(op, err)
}

// invalid, settings and notFound build driver-side errors (validation before
// anything is sent). Messages name identifiers only.
func invalid(op, format string, args ...any) error {
	return datastore.Errorf(library.Name, op, datastore.KindInvalid, format, args...)
}

func settings(op, format string, args ...any) error {
	return datastore.Errorf(library.Name, op, datastore.KindSettings, format, args...)
}

func notFound(op, format string, args ...any) error {
	return datastore.Errorf(library.Name, op, datastore.KindNotFound, format, args...)
}
