package mysql

import (
	"context"
	"crypto/x509"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// Error is an error from the server or the connection, classified for the
// engine. Its message names the operation, the server's error number and
// SQLSTATE, never a value: MySQL's own messages quote row values and subject
// identifiers (Duplicate entry '…', Incorrect datetime value: '…', Truncated
// incorrect INTEGER value: '…'), so they are kept out of Error() on purpose.
// errors.Is(err, datastore.ErrUnavailable) and friends work through Unwrap;
// errors.As can reach the original *mysql.MySQLError when a caller really
// needs it, and must then not log it.
type Error struct {
	Op       string // what the driver was doing, e.g. "delete batch on `events`"
	Number   uint16 // server error number, 0 for client-side errors
	SQLState string
	Class    error // one of datastore.ErrUnavailable, ErrAuthentication, ErrNotFound, ErrInvalid
	reason   string
	cause    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("mysql: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Class.Error())
	if e.reason != "" {
		b.WriteString(": ")
		b.WriteString(e.reason)
	}
	if e.Number != 0 {
		fmt.Fprintf(&b, " (error %d", e.Number)
		if e.SQLState != "" {
			fmt.Fprintf(&b, ", SQLSTATE %s", e.SQLState)
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap exposes the class and the original error to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Class}
	}
	return []error{e.Class, e.cause}
}

// invalid and notFound build driver-side errors (validation before anything
// is sent). Messages name identifiers only.
func invalid(op, format string, args ...any) error {
	return &Error{Op: op, Class: datastore.ErrInvalid, reason: fmt.Sprintf(format, args...)}
}

// settings is an error in the DataStore's settings, found before any
// connection (datastore.ErrSettings); asSettings turns a validation error
// of invalid into one.
func settings(op, format string, args ...any) error {
	return &Error{Op: op, Class: datastore.ErrSettings, reason: fmt.Sprintf(format, args...)}
}

func asSettings(err error) error {
	var e *Error
	if errors.As(err, &e) && errors.Is(e.Class, datastore.ErrInvalid) && e.cause == nil {
		c := *e
		c.Class = datastore.ErrSettings
		return &c
	}
	return err
}

func notFound(op, format string, args ...any) error {
	return &Error{Op: op, Class: datastore.ErrNotFound, reason: fmt.Sprintf(format, args...)}
}

// classify turns an error from database/sql or go-sql-driver into an *Error.
// Context cancellation by the caller is returned as is (wrapped with the
// operation): it is neither the store's fault nor a reason to back off.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var le *Error
	if errors.As(err, &le) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("mysql: %s: %w", op, err)
	}
	if na := datastore.AsNotAllowed(err); na != nil {
		return fmt.Errorf("mysql: %s: %w", op, na)
	}
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		e := &Error{Op: op, Number: me.Number, cause: err}
		if me.SQLState != [5]byte{} {
			e.SQLState = string(me.SQLState[:])
		}
		e.reason, e.Class = classifyNumber(me.Number)
		return e
	}
	e := &Error{Op: op, Class: datastore.ErrUnavailable, cause: err}
	var ne net.Error
	var de *net.DNSError
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		e.reason = "timed out"
	case errors.Is(err, gomysql.ErrNativePassword), errors.Is(err, gomysql.ErrOldPassword),
		errors.Is(err, gomysql.ErrCleartextPassword), errors.Is(err, gomysql.ErrUnknownPlugin):
		e.Class, e.reason = datastore.ErrAuthentication, "authentication method not usable"
	case errors.Is(err, gomysql.ErrNoTLS):
		e.Class, e.reason = datastore.ErrInvalid, "TLS required but the server does not support it"
	case errors.As(err, &ue), errors.As(err, &he), errors.As(err, &ce):
		e.Class, e.reason = datastore.ErrInvalid, "server certificate not trusted"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.reason = "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, gomysql.ErrInvalidConn), errors.Is(err, gomysql.ErrPktSync):
		e.reason = "connection lost"
	case errors.As(err, &de):
		e.reason = "host name lookup failed"
	case errors.As(err, &ne):
		e.reason = "connection failed"
	default:
		// Neither the server nor recognisably the network: most likely a
		// value that could not be converted (database/sql quotes the value
		// in such messages), which retrying does not fix. Only the Go type
		// of the error is named.
		e.Class = datastore.ErrInvalid
		e.reason = fmt.Sprintf("client error (%T)", err)
	}
	return e
}

// classifyNumber maps a server error number to a class and a short,
// value-free reason.
func classifyNumber(n uint16) (string, error) {
	switch n {
	case 1045:
		return "access denied (wrong user name or password)", datastore.ErrAuthentication
	case 1044:
		return "access denied to the database", datastore.ErrAuthentication
	case 1698:
		return "access denied", datastore.ErrAuthentication
	case 1142, 1143, 1227, 1370:
		return "permission denied", datastore.ErrAuthentication
	case 1251, 1862, 3118, 4151:
		return "account cannot log in (auth protocol, expired password or locked account)", datastore.ErrAuthentication
	case 1146:
		return "table does not exist", datastore.ErrNotFound
	case 1054:
		return "unknown column", datastore.ErrNotFound
	case 1049:
		return "database does not exist", datastore.ErrNotFound
	case 1051, 1109:
		return "unknown table", datastore.ErrNotFound
	case 1205:
		return "lock wait timeout", datastore.ErrUnavailable
	case 1213:
		return "deadlock", datastore.ErrUnavailable
	case 1969, 3024:
		return "statement timeout", datastore.ErrUnavailable
	case 1317:
		return "query interrupted", datastore.ErrUnavailable
	case 1927:
		return "connection killed", datastore.ErrUnavailable
	case 1053:
		return "server shutting down", datastore.ErrUnavailable
	case 1040, 1203, 1226:
		return "too many connections", datastore.ErrUnavailable
	case 1290, 1836, 1792:
		return "server is read-only", datastore.ErrUnavailable
	case 1037, 1038, 1041, 1135:
		return "server out of resources", datastore.ErrUnavailable
	case 1615:
		return "prepared statement needs to be re-prepared", datastore.ErrUnavailable
	case 1180, 1181:
		return "commit or rollback failed", datastore.ErrUnavailable
	case 4031:
		return "disconnected by the server", datastore.ErrUnavailable
	case 1507, 1508:
		// The partition list changed under us (dropped concurrently); the
		// next call looks again.
		return "partition changed concurrently", datastore.ErrUnavailable
	case 1451:
		return "a foreign key of another table refers to these rows: erase the referencing rows first", datastore.ErrInvalid
	case 1452:
		return "foreign key constraint fails", datastore.ErrInvalid
	case 1048:
		return "column cannot be null", datastore.ErrInvalid
	case 1406:
		return "value too long for the column", datastore.ErrInvalid
	case 1264, 1265, 1292, 1366, 1367:
		return "value does not fit the column type", datastore.ErrInvalid
	case 1062:
		return "duplicate key", datastore.ErrInvalid
	case 1064:
		return "syntax error", datastore.ErrInvalid
	case 1093:
		return "the statement refers to its own target table in a subquery", datastore.ErrInvalid
	case 1665:
		return "binary log format does not allow this statement", datastore.ErrInvalid
	}
	if n >= 2000 && n < 3000 {
		// Client error numbers (CR_*), in case a proxy passes them on.
		return "client or connection error", datastore.ErrUnavailable
	}
	return "server error", datastore.ErrInvalid
}
